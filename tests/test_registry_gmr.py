"""GMR (within-group geometric mean ratio, e.g. D-BEYOND's Ki67 post/pre 0.98): a log-scale,
descriptive measure — validated like a ratio, never pooled, no "not poolable" warning."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from metaanalysis import registry as reg

ROOT = Path(__file__).resolve().parents[1]


def _shipped_with(tmp_path, **changes):
    text = (ROOT / "trials" / "registry.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    ix = {n: i for i, n in enumerate(rows[0])}
    line = next(n for n, r in enumerate(rows[1:], start=2) if r[ix["row_id"]] == "DBEYOND-KI67")
    for k, v in changes.items():
        rows[line - 1][ix[k]] = v
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    p = tmp_path / "registry.csv"
    p.write_text(out.getvalue(), encoding="utf-8")
    return p, line, ix


def test_shipped_ki67_row_is_gmr_and_descriptive():
    r = reg.load_registry(ROOT / "trials" / "registry.csv")
    row = r.df.set_index("row_id").loc["DBEYOND-KI67"]
    assert row["measure"] == "GMR" and row["estimate"] == pytest.approx(0.98)  # evidence file
    assert not [p for p in r.problems if "DBEYOND-KI67" in p.message]
    eff = reg.effects_table(r).set_index("row_id").loc["DBEYOND-KI67"]
    assert eff["reason"] == "within-group geometric mean ratio: no comparative effect"


def test_gmr_must_be_positive(tmp_path):
    p, line, ix = _shipped_with(tmp_path, estimate="-0.5")
    probs = reg.validate_registry(p)
    errs = [q for q in probs if q.severity == "error"]
    assert errs and errs[0].line == line and errs[0].column == ix["estimate"] + 1, probs


def test_gmr_ci_must_contain_estimate(tmp_path):
    p, line, ix = _shipped_with(tmp_path, ci_lower="1.1", ci_upper="1.5", ci_level="95")
    errs = [q for q in reg.validate_registry(p) if q.severity == "error"]
    assert [(q.line, q.column) for q in errs] == [(line, ix["estimate"] + 1)], errs
    assert "outside its CI" in errs[0].message


def test_prop_outside_unit_interval_is_an_error(tmp_path):
    text = (ROOT / "trials" / "registry.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    ix = {n: i for i, n in enumerate(rows[0])}
    line = next(n for n, r in enumerate(rows[1:], start=2) if r[ix["measure"]] == "PROP"
                and r[ix["estimate"]])
    rows[line - 1][ix["estimate"]] = "86"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    p = tmp_path / "registry.csv"
    p.write_text(out.getvalue(), encoding="utf-8")
    errs = [q for q in reg.validate_registry(p) if q.severity == "error"]
    assert [(q.line, q.column) for q in errs] == [(line, ix["estimate"] + 1)], errs
    assert "[0, 1]" in errs[0].message
