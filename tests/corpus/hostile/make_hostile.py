"""Write every hostile case of tests/test_hostile.py as files, to try them by hand.

    .venv/bin/python tests/corpus/hostile/make_hostile.py [DIR]     # default tests/output/hostile

Each case becomes DIR/<case>/registry.csv + analyses.toml (built from the SHIPPED trials/ files
at run time, so the corpus never goes stale) and DIR/<case>/EXPECT (exit code, file:line:column).
Then e.g. ``metaanalysis report --registry DIR/ci_level_100/registry.csv --plan
DIR/ci_level_100/analyses.toml --out /tmp/out``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from test_hostile import CASES, write_case  # noqa: E402


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "tests" / "output" / "hostile"
    for c in CASES:
        d = out / c.name
        d.mkdir(parents=True, exist_ok=True)
        write_case(c, d)
        where = f"{c.where}:{c.line}:{'*' if c.col is None else c.col}: {c.msg}" if c.exit else (c.warn or "")
        (d / "EXPECT").write_text(f"exit {c.exit}\n{where}\n", encoding="utf-8")
    print(f"{len(CASES)} cases in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
