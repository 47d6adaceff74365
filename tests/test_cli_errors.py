"""The CLI's last line of defence: OS errors and bugs print one line, never a traceback."""

from __future__ import annotations

import pytest

from metaanalysis import cli


def test_internal_error_is_one_line_with_exit_3(monkeypatch, capsys, tmp_path):
    import metaanalysis.cli.pool as pc

    def boom(args):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(pc, "cli_pool", boom)
    monkeypatch.delenv("METAANALYSIS_DEBUG", raising=False)
    rc = cli.main(["pool", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert rc == 3
    assert "internal error: ZeroDivisionError: simulated bug" in err
    assert "Traceback" not in err and "METAANALYSIS_DEBUG=1" in err


def test_debug_env_shows_the_traceback(monkeypatch):
    import metaanalysis.cli.pool as pc

    monkeypatch.setattr(pc, "cli_pool", lambda args: 1 / 0)
    monkeypatch.setenv("METAANALYSIS_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["pool", "x.csv"])


def test_os_error_names_the_file(monkeypatch, capsys):
    import metaanalysis.cli.pool as pc

    def full(args):
        raise OSError(28, "No space left on device", "reports/index.html")

    monkeypatch.setattr(pc, "cli_pool", full)
    rc = cli.main(["pool", "x.csv"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "reports/index.html: No space left on device" in err and "Traceback" not in err


def test_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["pool"])
    assert e.value.code == 2
    assert "usage error" in capsys.readouterr().err
