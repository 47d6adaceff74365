"""`metaanalysis validate` never shows a traceback, in-process and as the installed console script."""

import subprocess
import sys
from pathlib import Path

import pytest

from metaanalysis import cli

CORPUS = Path(__file__).parent / "corpus" / "registry"
FILES = sorted(CORPUS.glob("*.csv"))
SCRIPT = Path(sys.executable).parent / "metaanalysis"  # the venv's console script


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_main_in_process(path, capsys):
    rc = cli.main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert rc in (0, 1)
    assert "Traceback" not in err + out
    assert out.startswith(f"{path}: ") and " rows, " in out
    # every stderr line is PATH:LINE:COLUMN: severity: ...
    for line in err.splitlines():
        assert line.startswith(f"{path}:"), line
        assert ": error: " in line or ": warning: " in line, line


# One console-script process per kind of input (each costs ~0.7 s of imports); every corpus
# file also goes through the same code in-process above, where any exception fails the test.
SUBPROCESS_FILES = ["valid_minimal.csv", "empty.csv", "binary_xlsx.csv", "utf16.csv", "not_text_bytes.csv",
                    "unclosed_quote.csv", "missing_column.csv", "multiline.csv", "semicolon_decimal_comma.csv"]


def test_console_script_over_corpus_sample(tmp_path):
    assert SCRIPT.is_file(), f"console script not installed at {SCRIPT}"
    files = [CORPUS / n for n in SUBPROCESS_FILES]
    script = "; ".join(f'"{SCRIPT}" validate "{p}" >/dev/null 2>>"{tmp_path}/err"; echo $? >> "{tmp_path}/rc"' for p in files)
    subprocess.run(["bash", "-c", script], check=True, timeout=600)
    err = (tmp_path / "err").read_text()
    codes = [int(x) for x in (tmp_path / "rc").read_text().split()]
    assert "Traceback" not in err
    assert codes == [0, 1, 1, 0, 1, 1, 1, 1, 0]
    assert f"{CORPUS / 'multiline.csv'}:5:14: error: [endpoint] 'DSF' is not an allowed endpoint" in err


def test_console_script_usage_error(tmp_path):
    p = subprocess.run([str(SCRIPT), "validate", str(tmp_path / "absent.csv")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr
