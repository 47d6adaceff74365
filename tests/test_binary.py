"""Mantel-Haenszel and Peto pooling (metaanalysis.binary) against metafor 3.8.1's rma.mh / rma.peto.

Reference values: tests/reference/fixtures/binary/*.json, written by
tests/reference/make_binary_fixtures.R (R 4.2.2, metafor 3.8-1, metadat 1.2-0): 8 datasets x 13
zero-cell/level/correction options x (MH OR, RR, RD + Peto) = 408 fits. Every field metafor gives is
compared at 1e-6 (absolute or relative, tests/reference/conformance.py); no R needed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import metaanalysis
from metaanalysis.binary import BINARY_FIELDS, escalc_2x2, pool_mh, pool_peto, zero_cell_options
from tests.reference.conformance import _decode, close, mismatches

BINARY_DIR = Path(__file__).parent / "reference" / "fixtures" / "binary"
FIXTURES = [_decode(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(BINARY_DIR.glob("*.json"))]
CASES = [(fx, fit) for fx in FIXTURES for fit in fx["fits"]]
IDS = [f"{fx['dataset']}-{fit['function']}-{fit['measure']}-{fit['option']}" for fx, fit in CASES]

MH_KEYS = ("estimate", "se", "stat", "pvalue", "ci_lower", "ci_upper", "q", "q_df", "q_pvalue", "i2", "h2", "k",
           "k_yi", "k_pos", "cochran", "cochran_pvalue", "cmh", "cmh_pvalue", "breslow_day", "breslow_day_pvalue",
           "tarone", "tarone_pvalue", "exp_estimate", "exp_ci_lower", "exp_ci_upper", "weights", "yi", "vi")
PETO_KEYS = ("estimate", "se", "stat", "pvalue", "ci_lower", "ci_upper", "q", "q_df", "q_pvalue", "i2", "h2", "k",
             "k_yi", "k_pos", "exp_estimate", "exp_ci_lower", "exp_ci_upper", "weights", "yi", "vi")


def _fit(fx: dict, fit: dict):
    args = fit["arguments"]
    kw = dict(level=args["level"], add=tuple(args["add"]), to=tuple(args["to"]), drop00=tuple(args["drop00"]))
    cells = (fx["ai"], fx["bi"], fx["ci"], fx["di"])
    if fit["function"] == "rma.peto":
        return pool_peto(*cells, **kw)
    return pool_mh(*cells, measure=fit["measure"], correct=args["correct"], **kw)


def _as_dict(res) -> dict:
    d = {k: getattr(res, k) for k in MH_KEYS}
    d.update(weights=list(res.weights), yi=list(res.yi), vi=list(res.vi))
    return d


def test_fixture_inventory():
    """The committed fixtures cover every measure, both functions and every option (guards a partial run)."""
    assert len(FIXTURES) == 8
    assert len(CASES) == 8 * (13 * 3 + 12)
    assert {fit["option"] for _, fit in CASES} >= {"default", "to_all", "to_if0all", "to_none", "drop00_false",
                                                    "both_only0", "both_all", "both_if0all", "both_drop00",
                                                    "both_none_keep00", "level90", "uncorrected", "add_0.1"}
    assert all(fx["metafor_version"] == "3.8.1" for fx in FIXTURES)
    # the data have what the options are about: zero cells and double-zero tables
    nz = sum(int(np.any(np.array([fx["ai"], fx["bi"], fx["ci"], fx["di"]]) == 0)) for fx in FIXTURES)
    assert nz >= 5


@pytest.mark.parametrize("fx,fit", CASES, ids=IDS)
def test_matches_metafor(fx, fit):
    assert "error" not in fit, fit.get("error")
    res = _fit(fx, fit)
    keys = PETO_KEYS if fit["function"] == "rma.peto" else MH_KEYS
    bad = mismatches(_as_dict(res), fit["result"], keys)
    assert not bad, f"{fit['r_call']}\n" + "\n".join(bad)


@pytest.mark.parametrize("fx,fit", CASES, ids=IDS)
def test_metafor_call_reproduces_arguments(fx, fit):
    """The stored R call of our result names the same add/to/drop00/level as the fixture's fit."""
    res = _fit(fx, fit)
    args = fit["arguments"]
    call = res.metafor_call
    assert call.startswith(fit["function"] + "(")
    assert f'to=c("{args["to"][0]}", "{args["to"][1]}")' in call
    assert "drop00=c(" + ", ".join("TRUE" if d else "FALSE" for d in args["drop00"]) + ")" in call
    assert f"level={100 * args['level']:.10g}" in call
    assert ("correct=FALSE" in call) == (args.get("correct") is False)


def test_top_level_exports():
    assert metaanalysis.pool_mh is pool_mh
    assert metaanalysis.pool_peto is pool_peto
    assert "pool_mh" in metaanalysis.__all__ and "pool_peto" in metaanalysis.__all__


def test_defaults_are_metafors():
    # rma.mh(add=1/2, to="only0", drop00=TRUE): the single values apply to yi/vi only
    assert zero_cell_options() == ((0.5, 0.0), ("only0", "none"), (True, False))
    assert zero_cell_options(0.25, ("all", "ONLY0"), (False, True)) == ((0.25, 0.0), ("all", "only0"),
                                                                       (False, True))


def test_to_frame_and_to_dict():
    fx = FIXTURES[0]
    res = pool_mh(fx["ai"], fx["bi"], fx["ci"], fx["di"], measure="RD")
    frame = res.to_frame()
    assert list(frame.columns) == list(BINARY_FIELDS)
    assert frame.shape == (1, len(BINARY_FIELDS))
    assert frame.loc[0, "exp_estimate"] is None          # no ratio scale for RD
    d = res.to_dict()
    assert d["cmh"] is None and d["tarone"] is None      # NaN -> None (JSON-ready)
    json.dumps(d)
    assert res.tau2 == 0.0
    with pytest.raises(AttributeError):
        res.estimate = 0.0                               # frozen


def test_exp_scale_matches_estimate():
    res = pool_mh([4, 6], [96, 94], [9, 12], [91, 88], measure="RR")
    assert math.isclose(res.exp_estimate, math.exp(res.estimate))
    assert res.exp_ci_lower < res.exp_estimate < res.exp_ci_upper
    # hand computation: R = sum(a n2 / N), S = sum(c n1 / N) with equal arms: (4 + 6) / (9 + 12)
    assert math.isclose(res.exp_estimate, 10 / 21, rel_tol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(measure="HR"), "measure must be one of OR, RR, RD"),
    (dict(add=-1), "add must be a finite number >= 0"),
    (dict(add=(0.5, 0.5, 0.5)), "add must be one value or two"),
    (dict(to="some"), "to must be one of only0, all, if0all, none"),
    (dict(drop00="yes"), "drop00 must be True or False"),
    (dict(level=1.5), "level must be"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pool_mh([1, 2], [9, 8], [3, 4], [7, 6], **kwargs)


@pytest.mark.parametrize("cells,match", [
    (([1, np.nan], [9, 8], [3, 4], [7, 6]), r"ai\[1\] is missing"),
    (([1, 2], [9, -8], [3, 4], [7, 6]), r"bi\[1\] is negative"),
    (([1, 2], [9, 8], [3], [7, 6]), "one count per study"),
    (([0, 2], [0, 8], [3, 4], [7, 6]), "study 0 has no participants in the intervention"),
    (([], [], [], []), "no studies"),
    ((["a"], [1], [1], [1]), "must be numbers"),
])
def test_bad_tables(cells, match):
    with pytest.raises(ValueError, match=match):
        pool_mh(*cells)


def test_peto_needs_both_outcomes():
    with pytest.raises(ValueError, match="never occurs in any table"):
        pool_peto([0, 0], [10, 12], [0, 0], [11, 9], drop00=False)


def test_all_tables_dropped():
    with pytest.raises(ValueError, match="nothing to pool"):
        pool_mh([0, 0], [10, 12], [0, 0], [11, 9], drop00=(True, True))


def test_escalc_matches_fixture_yi():
    """escalc_2x2 alone reproduces metafor's escalc (the fixture's yi.f/vi.f under the default options)."""
    for fx in FIXTURES:
        for fit in fx["fits"]:
            if fit["option"] != "default":
                continue
            m = "PETO" if fit["function"] == "rma.peto" else fit["measure"]
            yi, vi = escalc_2x2(fx["ai"], fx["bi"], fx["ci"], fx["di"], m, 0.5, "only0", True)
            assert all(close(a, e) for a, e in zip(yi, fit["result"]["yi"])), (fx["dataset"], m)
            assert all(close(a, e) for a, e in zip(vi, fit["result"]["vi"])), (fx["dataset"], m)
