"""HTML/JSON/CSV reports (metaanalysis.report.build) built from the shipped registry and plan.

Pooled numbers are checked against ``metaanalysis.pool`` on the same registry rows (itself
checked against metafor 3.8-1 in tests/test_conformance.py); single-study values against the
registry (ABCSG-18 fracture HR 0.50, trials/registry.csv line 2).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metaanalysis import pool
from metaanalysis.cli import main
from metaanalysis.plan import load_plan
from metaanalysis.problems import ProblemError
from metaanalysis.registry import effects_table, load_registry
from metaanalysis.report.output import MARKER, write_tree_atomic
from metaanalysis.report.build import build_reports
from metaanalysis.render.data import neutralise_cell

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"


def _snapshot(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "reports"
    summary = build_reports(REGISTRY, PLAN, out)
    return out, summary


@pytest.fixture(scope="module")
def plan():
    return load_plan(str(PLAN), load_registry(REGISTRY))


def test_every_page_exists_and_index_links_them(built, plan):
    out, summary = built
    ids = [a.id for a in plan.analyses] + [n.id for n in plan.narratives]
    assert list(summary.analyses) == [a.id for a in plan.analyses]
    assert list(summary.narratives) == [n.id for n in plan.narratives]
    index = (out / "index.html").read_text(encoding="utf-8")
    for i in ids:
        assert (out / f"{i}.html").is_file()
        assert (out / f"{i}.json").is_file()
        assert f'href="{i}.html"' in index
    assert (out / "results.csv").is_file()
    assert set(summary.files) == {p.name for p in out.iterdir()} - {"README.md", MARKER}


def test_pooled_json_equals_pool_on_the_same_rows(built, plan):
    out, _ = built
    reg = load_registry(REGISTRY)
    eff = effects_table(reg).set_index("row_id")
    for a in plan.analyses:
        js = json.loads((out / f"{a.id}.json").read_text(encoding="utf-8"))
        ids = [s["row_id"] for s in js["studies"]]
        assert set(ids) == set(a.rows), a.id
        yi = eff.loc[ids, "yi"].to_numpy(float)
        vi = eff.loc[ids, "vi"].to_numpy(float)
        assert np.allclose([s["yi"] for s in js["studies"]], yi, rtol=0, atol=0)
        if len(ids) == 1:
            assert js["result"] is None and js["single_study"]
            continue
        s = a.settings
        ref = pool(yi, vi, method=s.method, test=s.test, level=s.level, pi=s.pi).to_dict()
        res = js["result"]
        for key in ("estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "tau2",
                    "tau2_ci_lower", "tau2_ci_upper", "i2", "h2", "q", "q_pvalue", "pvalue"):
            if ref[key] is None:
                assert res[key] is None, (a.id, key)
            else:
                assert res[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), (a.id, key)
        # the plan's defaults: REML + Knapp-Hartung ad hoc (trials/analyses.toml [defaults])
        assert js["settings"] == {"method": "REML", "test": "adhoc", "pi": "metafor", "level": 0.95}
        if len(ids) == 2:   # two studies: the Bayesian posterior leads (Bender et al. 2018): no weights
            assert js["headline"] == "bayesian" and js["headline_result"] is None
            assert js["bayes"]["k"] == 2 and js["bayes"]["tau_prior"] == "halfnormal"
            assert all(st["weight"] is None for st in js["studies"])
        else:
            assert js["headline"] == "random-effects" and js["headline_result"] == res
            assert [st["weight"] for st in js["studies"]] == pytest.approx(ref["weights"], rel=1e-12)


def test_single_study_fracture(built):
    out, _ = built
    js = json.loads((out / "fracture.json").read_text(encoding="utf-8"))
    assert js["k"] == 1 and js["result"] is None
    st = js["studies"][0]
    assert math.exp(st["yi"]) == pytest.approx(0.50, abs=1e-12)      # registry line 2: HR 0.50
    assert "se-from-p" in st["flags"]           # a stable code (metaanalysis.vocab.StudyFlag)
    html = (out / "fracture.html").read_text(encoding="utf-8")
    assert "Single study, not pooled" in html
    # the subtitle says "not pooled" once (it used to add "· no pooling")
    meta = re.search(r'<p class="meta">(.*?)</p>', html, re.S).group(1)
    assert "1 study, not pooled" in meta and "no pooling" not in meta and "τ²" not in meta
    # natural-scale display, one formatter: HR 0.50
    assert "HR 0.50" in html


def test_displayed_numbers_use_natural_scale(built):
    out, _ = built
    js = json.loads((out / "sre-zoledronic.json").read_text(encoding="utf-8"))
    est = math.exp(js["result"]["estimate"])
    html = (out / "sre-zoledronic.html").read_text(encoding="utf-8")
    assert f'<span class="kr-value">{est:.2f}</span>' in html
    lo, hi = math.exp(js["result"]["ci_lower"]), math.exp(js["result"]["ci_upper"])
    assert f"95% CI {lo:.2f} to {hi:.2f}" in html


def test_warnings_are_shown(built):
    out, summary = built
    sre = json.loads((out / "sre-zoledronic.json").read_text(encoding="utf-8"))
    # identical HRs 0.82, 0.82, 0.84 (registry lines 22-24): tau2 = 0; plain HKSJ would be narrower
    # than z (q < 1), the plan's ad hoc interval is not, so that flag is not raised. All three rows
    # are confirmed in the Xgeva US prescribing information, section 14, Table 2 (curation round
    # 2026-12-01), so the page no longer carries the unconfirmed flag.
    assert {"few-studies", "no-funnel", "tau2-zero"} <= set(sre["warning_codes"])
    assert "unconfirmed" not in sre["warning_codes"]
    assert "hksj-narrower" not in sre["warning_codes"]
    # the exploratory OS analysis: the lung subgroup's SE comes from p = 0.01 (registry
    # ZASOLID-OS-2012-LUNG, no CI), a post hoc subgroup, and D-CARE OS and (since the 2026-12-01
    # curation round) NCT01951586 (AMG20120249-OS) are missing evidence
    os_ = json.loads((out / "os-any-comparator.json").read_text(encoding="utf-8"))
    assert {"derived-se", "post-hoc", "missing-evidence"} <= set(os_["warning_codes"])
    assert os_["missing_evidence"] == ["DCARE-OS-2020", "AMG20120249-OS"]
    assert json.loads((out / "dfs.json").read_text(encoding="utf-8"))["warning_codes"] == ["single-study"]
    assert any(w.startswith("sre-zoledronic: ") for w in summary.warnings)
    # `metaanalysis report` lists the warnings (issue #16: it printed only their number): one line
    # per analysis naming its page's Warnings section and the labels shown there, then where the texts are
    from metaanalysis.cli.report import warning_lines

    lines = warning_lines(summary)
    assert len(summary.warning_labels) == len(summary.warnings)
    sre_line = next(ln for ln in lines if "sre-zoledronic.html" in ln)
    n_sre = sum(w.startswith("sre-zoledronic: ") for w in summary.warnings)
    assert sre_line.startswith(f"  {out / 'sre-zoledronic.html'}#h-warn ({n_sre}): few studies; no funnel")
    assert 'id="h-warn"' in (out / "sre-zoledronic.html").read_text(encoding="utf-8")
    assert lines[-1].endswith(f"in {out / 'results.csv'}, column warnings)")
    assert len(lines) == len({i for i, _ in summary.warning_labels}) + 1
    html = (out / "sre-zoledronic.html").read_text(encoding="utf-8")
    assert "No funnel plot: k = 3 &lt; 10" in html


@pytest.fixture(scope="module")
def cross_built(tmp_path_factory):
    """The cross-question test plan (tests/plans/cross_question.toml): the shipped registry with
    the k = 2 and k = 3 analyses the one-question re-cut of the shipped plan no longer pools."""
    out = tmp_path_factory.mktemp("cross") / "out"
    build_reports(REGISTRY, ROOT / "tests" / "plans" / "cross_question.toml", out)
    return out


def test_coverage_table_shows_the_bayesian_row_and_the_prior_median(built, cross_built):
    """Issue #12 item 3: the coverage table of a pooled ratio-measure page has the Bayesian central
    credible interval (its prior: half-normal(0.5) on tau, the default of ratio measures) and the
    prior-median column, tau2 = (0.5 Phi^-1(3/4))^2 = 0.1137; the JSON carries the same rows."""
    for out, page in ((built[0], "sre-zoledronic"), (cross_built, "dfs")):
        html = (out / f"{page}.html").read_text(encoding="utf-8")
        cov = html[html.index('id="h-cov"'):html.index("</section>", html.index('id="h-cov"'))]
        assert '<th scope="row">Bayesian central credible</th>' in cov
        assert "τ² = prior median<span class=\"sub\">0.1137</span>" in cov
        assert "The Bayesian row is the central 95% credible interval of μ under this page" in cov
        js = json.loads((out / f"{page}.json").read_text(encoding="utf-8"))["coverage"]
        assert js["intervals"][-1] == "bayes" and {"role": "prior-median", "tau2": (0.5 * 0.6744897501960817) ** 2} \
            in js["grid"]
        assert len([r for r in js["rows"] if r["interval"] == "bayes"]) == len(js["grid"])
    # DFS of the cross-question plan (k = 2) leads with the Bayesian posterior, so its row is the highlighted one
    dfs = (cross_built / "dfs.html").read_text(encoding="utf-8")
    assert '<tr class="hl"><th scope="row">Bayesian central credible</th>' in dfs


def test_estimator_panel_and_sensitivity_tables(built):
    out, _ = built
    js = json.loads((out / "sre-zoledronic.json").read_text(encoding="utf-8"))
    assert [p["method"] for p in js["estimator_panel"]] == ["DL", "REML", "ML", "PM", "EB", "HS", "SJ", "HE"]
    reml = [p for p in js["estimator_panel"] if p["method"] == "REML"][0]
    assert reml["adhoc"]["estimate"] == pytest.approx(js["result"]["estimate"], rel=1e-14)
    assert reml["adhoc"]["ci_lower"] == pytest.approx(js["result"]["ci_lower"], rel=1e-14)
    assert reml["z"]["test"] == "z" and reml["knha"]["test"] == "knha"
    assert len(js["leave_one_out"]) == 3 and len(js["cumulative"]) == 3
    assert js["subgroups"][0]["variable"] == "tumour_type"
    assert set(js["subgroups"][0]["groups"]) == {"breast", "prostate",
                                                 "solid tumours (excl. breast/prostate) or multiple myeloma"}
    os_ = json.loads((out / "os-any-comparator.json").read_text(encoding="utf-8"))
    names = [s["name"] for s in os_["sensitivity"]]
    # the ABCSG-18 censored-OS swap: same publication and report (trials/registry.csv rows
    # ABCSG18-OS-2022 and ABCSG18-OS-2022-CENS, "final analysis 2022"), so the endpoint detail
    # tells them apart
    assert ("ABCSG-18 final analysis, censored at cross-over or start of other antiresorptive "
            "therapy (Gnant 2022) instead of ABCSG-18 final analysis (Gnant 2022)") in names
    dfs = json.loads((out / "dfs.json").read_text(encoding="utf-8"))
    # ABCSG18-DFS-2022 "final analysis 2022" replaces ABCSG18-DFS-2019 "primary DFS analysis 2019"
    assert ("ABCSG-18 final analysis (Gnant 2022) instead of ABCSG-18 primary DFS analysis (Gnant 2019)"
            in [s["name"] for s in dfs["sensitivity"]])
    for page in ("os-any-comparator", "dfs"):
        for n in json.loads((out / f"{page}.json").read_text(encoding="utf-8"))["sensitivity"]:
            if " instead of " in n["name"]:
                a, b = n["name"].split(" instead of ")
                assert a != b, n["name"]


def test_flatiron_p_value_combination(built):
    from scipy.stats import combine_pvalues

    out, _ = built
    js = json.loads((out / "flatiron-ici.json").read_text(encoding="utf-8"))
    c = js["combinations"][0]
    # registry lines 29-30: melanoma p = 0.0172, NSCLC p < 0.0001 (two-sided; halved, bound used)
    assert c["p_one_sided"] == [0.0172 / 2, 0.0001 / 2] and c["sided"] == [2, 2]
    ref = combine_pvalues([0.0172 / 2, 0.0001 / 2], method="fisher")
    assert c["fisher"]["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert c["fisher"]["pvalue"] == pytest.approx(ref.pvalue, rel=1e-12) and c["fisher"]["df"] == 4
    ref = combine_pvalues([0.0172 / 2, 0.0001 / 2], method="stouffer")
    assert c["stouffer"]["pvalue"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert c["upper_bound"] is True
    rows = {r["row_id"]: r for r in js["rows"]}
    assert rows["FLATIRON-ORR-2018-NSCLC"]["p"] == {"value": 0.0001, "relation": "<", "sided": 2}
    html = (out / "flatiron-ici.html").read_text(encoding="utf-8")
    assert "What this can and cannot mean" in html and "≤" in html


def test_one_study_rows_show_the_reported_ci(cross_built):
    # os-placebo by setting (the cross-question test plan, tests/plans/cross_question.toml): ABCSG-18
    # alone in "adjuvant"; registry ABCSG18-OS-2022 reports HR 0.80 (0.64-1.01), p = 0.065; a k = 1
    # refit gives 0.64-1.00 from the SE
    out = cross_built
    html = (out / "os-placebo.html").read_text(encoding="utf-8")
    sub = html[html.index('id="h-sub"'):html.index('id="h-funnel"')]
    row = re.search(r'<th scope="row">adjuvant</th>(.*?)</tr>', sub, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[:5] == ["1", "0.80", "0.64 to 1.01", "0.065", "–"], cells
    # cumulative: the first step is one study (nmCRPC-BMFS, reported 1.01 (0.85-1.20), p 0.91)
    cum = html[html.index("Cumulative, by publication year"):html.index('id="h-sub"')]
    first = re.search(r"<tbody>\s*<tr>(.*?)</tr>", cum, re.S).group(1)
    assert re.findall(r"<td[^>]*>(.*?)</td>", first)[:4] == ["1", "1.01", "0.85 to 1.20", "–"]


def test_every_table_is_in_a_scroll_wrapper(built):
    # a table wider than a phone (390 px) must scroll inside its own box, never the page
    # (flatiron-ici's p-value combination tables were not wrapped: page 421 px wide at 390 px)
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.bad, self.n = [], [], 0

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.n += 1
                if not any(t == "div" and "table-scroll" in (c or "").split() for t, c in self.stack):
                    self.bad.append(dict(attrs).get("class"))
            if tag not in ("br", "meta", "img", "input", "hr", "link", "wbr", "col"):
                self.stack.append((tag, dict(attrs).get("class")))

        def handle_endtag(self, tag):
            for i in range(len(self.stack) - 1, -1, -1):
                if self.stack[i][0] == tag:
                    del self.stack[i:]
                    break

    out, _ = built
    total = 0
    for page in sorted(out.glob("*.html")):
        p = P()
        p.feed(page.read_text(encoding="utf-8"))
        assert not p.bad, f"{page.name}: tables outside .table-scroll: {p.bad}"
        total += p.n
    assert total > 20


def test_plots_have_their_natural_size_in_px_and_scroll(built):
    # matplotlib writes width/height in pt; inlined, they are px (1 pt = 4/3 px) so the CSS
    # never shrinks a plot (smallest plot text 7.5 pt = 10 px) and a wide one scrolls
    out, _ = built
    css = (ROOT / "metaanalysis" / "render" / "style.css").read_text(encoding="utf-8")
    assert ".plot-scroll { overflow-x: auto; }" in css
    assert re.search(r"figure\.plot svg \{[^}]*max-width: none", css)
    seen = 0
    for page in sorted(out.glob("*.html")):
        html = page.read_text(encoding="utf-8")
        for m in re.finditer(r'<div class="plot-scroll"><svg ([^>]*)>', html):
            seen += 1
            attrs = dict(re.findall(r'([\w:-]+)="([^"]*)"', m.group(1)))
            vb = [float(v) for v in attrs["viewBox"].split()]
            assert attrs["width"] == f"{vb[2] * 4 / 3:.2f}".rstrip("0").rstrip(".") + "px"
            assert attrs["height"] == f"{vb[3] * 4 / 3:.2f}".rstrip("0").rstrip(".") + "px"
        assert html.count("<svg ") == html.count('<div class="plot-scroll"><svg '), page.name
    # a forest plot per analysis of trials/analyses.toml (4), the side-by-side plots of the narratives
    # with effect estimates (os-placebo, bmfs, ttbm, dfs-questions, subgroups-not-pooled), the albatross
    # plot (flatiron-ici) and the proportions (single-arm)
    assert seen == 11


_RESOURCE = re.compile(r"<(link|script|img|iframe|source|video|audio|embed|object|image|use)\b[^>]*>", re.I)


def test_no_external_resources_and_no_javascript(built):
    out, _ = built
    for p in out.glob("*.html"):
        html = p.read_text(encoding="utf-8")
        assert html.startswith("<!doctype html>\n<html lang=\"en\">")
        assert '<meta charset="utf-8">' in html and "<title>" in html
        assert "<script" not in html.lower()
        for m in _RESOURCE.finditer(html):
            tag = m.group(0)
            for attr in re.findall(r'(?:src|href|xlink:href)\s*=\s*"([^"]*)"', tag):
                assert not attr.startswith(("http://", "https://", "//")), (p.name, tag)
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", html), p.name
        assert "@import" not in html
        assert "@media print" in html


def test_results_csv(built):
    out, plan_ = built
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text(encoding="utf-8"))))
    assert [r["analysis_id"] for r in rows] == list(plan_.analyses)
    sre = [r for r in rows if r["analysis_id"] == "sre-zoledronic"][0]
    js = json.loads((out / "sre-zoledronic.json").read_text(encoding="utf-8"))
    assert float(sre["yi"]) == js["result"]["estimate"]           # negative number stays a number
    assert sre["yi"].startswith("-")
    assert float(sre["estimate"]) == pytest.approx(math.exp(js["result"]["estimate"]), rel=1e-15)


@pytest.mark.parametrize("cell,expected", [
    ("=1+1", "'=1+1"), ("+SUM(A1)", "'+SUM(A1)"), ("-x", "'-x"), ("@cmd", "'@cmd"),
    ("-0.22", "-0.22"), ("+1e-3", "+1e-3"), (-0.22, "-0.22"), ("plain", "plain"), (None, ""),
    (float("nan"), ""), (3, "3"), ("\t=1", "'\t=1"),
])
def test_neutralise_cell(cell, expected):
    assert neutralise_cell(cell) == expected


def test_csv_formula_in_a_title_is_neutralised(tmp_path):
    text = PLAN.read_text(encoding="utf-8").replace(
        'title = "Time to first skeletal-related event: denosumab vs zoledronic acid in bone metastases"',
        'title = "=HYPERLINK(\\"http://x\\",\\"sre\\")"', 1)
    plan = tmp_path / "analyses.toml"
    plan.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    build_reports(REGISTRY, plan, out)
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text(encoding="utf-8"))))
    sre = [r for r in rows if r["analysis_id"] == "sre-zoledronic"][0]
    assert sre["title"] == "'=HYPERLINK(\"http://x\",\"sre\")"


def test_two_builds_are_byte_identical(tmp_path, built):
    out1, _ = built
    out2 = tmp_path / "again"
    build_reports(REGISTRY, PLAN, out2)
    assert _snapshot(out1) == _snapshot(out2)


def test_source_date_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")   # 2023-11-14T22:13:20Z
    out = tmp_path / "r"
    build_reports(REGISTRY, PLAN, out)
    assert "2023-11-14 (SOURCE_DATE_EPOCH)" in (out / "index.html").read_text(encoding="utf-8")
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    out2 = tmp_path / "r2"
    build_reports(REGISTRY, PLAN, out2)
    assert "Build date" not in (out2 / "index.html").read_text(encoding="utf-8")


def test_footer_provenance(built):
    out, _ = built
    html = (out / "sre-zoledronic.html").read_text(encoding="utf-8")
    assert hashlib.sha256(REGISTRY.read_bytes()).hexdigest() in html
    assert hashlib.sha256(PLAN.read_bytes()).hexdigest() in html
    for pkg in ("metaanalysis", "numpy", "scipy", "pandas", "pillow", "jinja2"):
        assert pkg in html
    assert "metafor::rma.uni(" in html
    # PubMed / DOI as plain links (anchor href), registry line of each study
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/21060033/"' in html   # Stopeck 2010, registry line 22
    assert "line 22" in html
    # the evidence date comes from trials/searches.csv (latest 'searched' and 'extracted' rows), not the clock
    assert "Evidence current to</dt><dd class=\"evidence-date\">2026-12-01 (sources last searched; results " \
           "extracted to 2026-12-01; searches.csv)" in html


def test_failed_build_leaves_previous_output(tmp_path, monkeypatch):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "README.md").write_text("# kept\n", encoding="utf-8")
    build_reports(REGISTRY, PLAN, out)
    before = _snapshot(out)
    assert "README.md" in before

    import metaanalysis.plots as plots

    def boom(*a, **k):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(plots, "render_forest", boom)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        build_reports(REGISTRY, PLAN, out)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]   # no temporary dirs left


def test_readme_is_kept_across_builds(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "README.md").write_text("# committed\n", encoding="utf-8")   # as in a fresh clone
    # a previous build with an analysis since removed (the marker lists stale.html as ours)
    write_tree_atomic({"index.html": b"old", "stale.html": b"old"}, out)
    build_reports(REGISTRY, PLAN, out)
    assert (out / "README.md").read_text(encoding="utf-8") == "# committed\n"
    assert not (out / "stale.html").exists()


def test_foreign_directory_is_refused_and_left_alone(tmp_path):
    """A directory without the build marker (not written by a build) is never replaced."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.html").write_text("precious", encoding="utf-8")
    with pytest.raises(ProblemError, match="refusing to replace"):
        build_reports(REGISTRY, PLAN, out)
    assert [p.name for p in out.iterdir()] == ["notes.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_bad_plan_writes_nothing_and_exits_1(tmp_path, capsys):
    out = tmp_path / "reports"
    bad = ROOT / "tests" / "corpus" / "plan" / "same_patient_set.toml"
    with pytest.raises(ProblemError):
        build_reports(REGISTRY, bad, out)
    assert not out.exists()
    rc = main(["report", "--registry", str(REGISTRY), "--plan", str(bad), "--out", str(out)])
    assert rc == 1
    assert f"{bad}:8:11: error:" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_report_ok(tmp_path, capsys):
    out = tmp_path / "reports"
    rc = main(["report", "--registry", str(REGISTRY), "--plan", str(PLAN), "--out", str(out)])
    assert rc == 0
    assert "4 analyses, 7 narrative sections" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# autoescaping: hostile text in every displayed registry field
# ---------------------------------------------------------------------------------------------

PAYLOADS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
TEXT_FIELDS = ("trial_name", "population", "tumour_type", "dose", "endpoint_detail",
               "analysis_population", "report", "authors", "journal", "source_location", "notes",
               "intervention")


def _hostile_registry(tmp_path: Path) -> Path:
    with REGISTRY.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
        fields = list(rows[0])
    for i, r in enumerate(rows):
        for f in TEXT_FIELDS:
            p = PAYLOADS[(i + TEXT_FIELDS.index(f)) % 2]
            # consistent per trial for the fields a subgroup/label groups by
            r[f] = f"{r[f]} {p} [{f}]" if f != "tumour_type" else f"{r[f]}{PAYLOADS[0]}"
    path = tmp_path / "registry.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return path


def test_autoescape_every_field(tmp_path):
    reg = _hostile_registry(tmp_path)
    out = tmp_path / "reports"
    build_reports(reg, PLAN, out)
    pages = {p.name: p.read_text(encoding="utf-8") for p in out.glob("*.html")}
    everything = "\n".join(pages.values())
    for p in PAYLOADS:
        assert p not in everything
    assert "<script" not in everything.lower()
    assert "<img" not in everything.lower()
    assert "onerror=alert(1)>" not in everything
    esc = {PAYLOADS[0]: "&lt;script&gt;alert(1)&lt;/script&gt;",
           PAYLOADS[1]: "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"}
    assert esc[PAYLOADS[0]] in everything and esc[PAYLOADS[1]] in everything
    # each displayed field shows up escaped somewhere (its [field] tag follows the payload)
    for f in TEXT_FIELDS:
        if f == "tumour_type":
            assert esc[PAYLOADS[0]] in pages["bmfs.html"]
            continue
        assert f"[{f}]" in everything, f


# The forked build runs in a fresh process: this one may hold threads that other tests left
# (Dask's offload thread), and metaanalysis.runtime refuses to fork a threaded process.
_FORKED_BUILD = """
import sys
from metaanalysis.report.build import build_reports
from metaanalysis.runtime import fork_is_safe, fork_workers
assert fork_is_safe() and fork_workers(3, 2) == 2, "this process would render serially"
build_reports(sys.argv[1], sys.argv[2], sys.argv[3], jobs=2)
"""


def test_parallel_and_serial_plot_rendering_are_identical(tmp_path):
    build_reports(REGISTRY, PLAN, tmp_path / "serial", jobs=1)
    forked = subprocess.run([sys.executable, "-c", _FORKED_BUILD, str(REGISTRY), str(PLAN),
                             str(tmp_path / "forked")], capture_output=True, text=True, timeout=300)
    assert forked.returncode == 0, forked.stderr
    assert _snapshot(tmp_path / "serial") == _snapshot(tmp_path / "forked")


def test_report_with_coverage_off_says_so_and_rebuilds_byte_identical(tmp_path):
    """``[defaults] coverage = false`` (issue #15): no coverage table, the page says why, the JSON
    has ``coverage: null``, results.csv is unchanged in form, and two builds are byte-identical."""
    plan = tmp_path / "analyses.toml"
    plan.write_text('[defaults]\ncoverage = false\n\n[[analysis]]\nid = "sre"\ntitle = "SRE"\nendpoint = "SRE"\n'
                    'measure = "HR"\nselect.comparator = ["zoledronic acid 4 mg i.v. every 4 weeks"]\n',
                    encoding="utf-8")
    out1, out2 = tmp_path / "r1", tmp_path / "r2"
    build_reports(REGISTRY, plan, out1)
    build_reports(REGISTRY, plan, out2)
    assert _snapshot(out1) == _snapshot(out2)
    page = (out1 / "sre.html").read_text(encoding="utf-8")
    assert "The design-specific coverage simulation was not run: the plan turned it off (coverage = false)" in page
    assert "Monte-Carlo SE in brackets" not in page and "Morris et al. 2019" not in page
    assert json.loads((out1 / "sre.json").read_text(encoding="utf-8"))["coverage"] is None
    rows = list(csv.DictReader(io.StringIO((out1 / "results.csv").read_text(encoding="utf-8"))))
    assert [r["analysis_id"] for r in rows] == ["sre"] and rows[0]["k"] == "3"
