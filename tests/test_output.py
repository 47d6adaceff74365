"""Rules for replacing a report directory (metaanalysis/report/output.py)."""

from __future__ import annotations

import os

import pytest

from metaanalysis.problems import ProblemError
from metaanalysis.report.output import MARKER, _recover, check_out_dir, write_tree_atomic


def test_new_and_readme_only_directories_are_accepted(tmp_path):
    check_out_dir(tmp_path / "new")                     # does not exist yet
    d = tmp_path / "reports"
    d.mkdir()
    (d / "README.md").write_text("# committed\n")
    check_out_dir(d)                                    # as in a fresh clone


def test_build_writes_marker_and_keeps_readme(tmp_path):
    d = tmp_path / "reports"
    d.mkdir()
    (d / "README.md").write_text("# committed\n")
    write_tree_atomic({"index.html": b"<!doctype html>", "results.csv": b"a\n"}, d)
    assert sorted(os.listdir(d)) == [MARKER, "README.md", "index.html", "results.csv"]
    write_tree_atomic({"index.html": b"v2"}, d)        # a marked directory may be replaced
    assert sorted(os.listdir(d)) == [MARKER, "README.md", "index.html"]
    assert (d / "index.html").read_bytes() == b"v2"
    assert [p.name for p in tmp_path.iterdir()] == ["reports"]   # no temporary leftovers


def test_legacy_build_without_marker_is_accepted(tmp_path):
    d = tmp_path / "reports"
    d.mkdir()
    for name in ("index.html", "results.csv", "os.json", "os.html", "README.md"):
        (d / name).write_text("x")
    check_out_dir(d)


@pytest.mark.parametrize("extra", ["registry.csv.bak", "sub/"])
def test_legacy_look_alike_with_other_content_is_refused(tmp_path, extra):
    d = tmp_path / "reports"
    d.mkdir()
    for name in ("index.html", "results.csv"):
        (d / name).write_text("x")
    if extra.endswith("/"):
        (d / extra).mkdir()
    else:
        (d / extra).write_text("precious")
    with pytest.raises(ProblemError, match="refusing to replace"):
        check_out_dir(d)


def test_symlink_and_file_and_cwd_are_refused(tmp_path, monkeypatch):
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ProblemError, match="symbolic link"):
        check_out_dir(link)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ProblemError, match="is a file"):
        check_out_dir(f)
    monkeypatch.chdir(target)
    with pytest.raises(ProblemError, match="current directory"):
        check_out_dir(target)


def test_recover_restores_out_moved_aside_and_removes_leftovers(tmp_path):
    out = tmp_path / "reports"
    old = tmp_path / ".reports.old-abc"
    old.mkdir()
    (old / "index.html").write_text("previous")
    half = tmp_path / ".reports.build-xyz"
    half.mkdir()
    (half / "index.html").write_text("half")
    _recover(out)
    assert (out / "index.html").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]
