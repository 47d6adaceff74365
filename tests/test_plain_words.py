"""Plain words in the reports (issue #16): navigation by short titles (ids stay in URLs), flag
explanations visible without hover, no settings codes as reader-facing labels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markupsafe import escape

from metaanalysis import vocab
from metaanalysis.render import words

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"


@pytest.fixture(scope="module")
def built(shipped_build):
    return shipped_build


def test_every_flag_has_a_label_and_an_explanation():
    assert set(words.FLAG_LABELS) == set(words.FLAG_EXPLANATIONS) == set(vocab.Flag)
    assert all(t.endswith(".") for t in words.FLAG_EXPLANATIONS.values())


def test_short_titles_are_unique_and_cut_at_the_colon():
    titles = ["Overall survival: denosumab vs placebo (RCTs)", "Overall survival: all comparisons, incl. x",
              "Bone-metastasis-free survival: denosumab vs placebo", "Single-arm studies (no comparator)"]
    assert words.short_titles(titles) == ["Overall survival: denosumab vs placebo",
                                          "Overall survival: all comparisons",
                                          "Bone-metastasis-free survival", "Single-arm studies"]


def test_navigation_shows_short_titles_and_links_by_id(built):
    out, summary = built
    for page in sorted(out.glob("*.html")):
        nav = re.search(r"<nav aria-label=\"Analyses\">(.*?)</nav>", page.read_text(encoding="utf-8"), re.S).group(1)
        links = re.findall(r'<a href="([^"]+)\.html"[^>]*>([^<]*)</a>', nav)
        assert [h for h, _ in links] == ["index", *summary.analyses, *summary.narratives]
        texts = [t for _, t in links[1:]]
        assert len(set(texts)) == len(texts)
        assert not set(texts) & set(summary.analyses + summary.narratives), page.name   # no ids shown
    index = (out / "index.html").read_text(encoding="utf-8")
    assert ">Bone-metastasis-free survival across clinical questions</a>" in index
    assert ">Overall survival, exploratory</a>" in index     # the exploratory analysis says so in the navigation


def test_overview_flags_link_to_warnings_and_index_explains_them(built):
    out, summary = built
    index = (out / "index.html").read_text(encoding="utf-8")
    flags = re.findall(r'<a class="flag flag-([\w-]+)" href="([\w-]+)\.html#h-warn"', index)
    assert flags and {a for _, a in flags} <= set(summary.analyses)
    legend = re.search(r'<dl class="legend">(.*?)</dl>', index, re.S).group(1)
    for code in {c for c, _ in flags}:
        f = vocab.Flag(code)
        assert escape(words.FLAG_LABELS[f]) in legend and escape(words.FLAG_EXPLANATIONS[f]) in legend, code
    for aid in {a for _, a in flags}:
        assert 'id="h-warn"' in (out / f"{aid}.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("code", ["use_for_pooling = no", "PI metafor", "Test of the mean", ">SE from<",
                                  "HKSJ CI &lt; z CI", "k = 2: t(1)"])
def test_no_codes_as_reader_labels(built, code):
    out, _ = built
    for page in sorted(out.glob("*.html")):
        assert code not in page.read_text(encoding="utf-8"), (page.name, code)


def test_settings_and_test_in_words(built):
    out, _ = built
    page = (out / "sre-zoledronic.html").read_text(encoding="utf-8")
    # trials/analyses.toml defaults: REML, test = "adhoc", pi = "metafor", level 0.95
    assert ("random-effects model (restricted maximum-likelihood estimator of the between-study spread); "
            "HKSJ ad hoc confidence interval; prediction interval from the same distribution as the CI; "
            "95% level") in page
    # metafor 4 rma.uni(yi = log(c(0.82, 0.82, 0.84)), sei from the registry CIs, method = "REML",
    # test = "adhoc"): zval -4.325411, pval 0.049514 (t with 2 df)
    assert re.search(r"Test of no effect</span> p = 0\.050 \(t = -4\.33, 2 degrees of freedom\)", page)


def _doc_tables(text: str) -> dict[str, dict[str, str]]:
    """The plan-key tables of trials/README.md: heading -> {key: row text}."""
    part = text[text.index("## The analysis plan"):]
    out: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n### ", part)[1:]:
        head = block.splitlines()[0]
        rows = {}
        for line in block.splitlines():
            m = re.match(r"\| (`[^|]+`) \|", line)
            if m:
                for key in re.findall(r"`([^`]+)`", m.group(1)):
                    rows[key] = line
        out[head] = rows
    return out


def test_plan_reference_lists_every_key_and_value():
    """trials/README.md documents exactly the keys metaanalysis.plan accepts, with the vocabulary's values."""
    from metaanalysis import plan

    tables = _doc_tables((ROOT / "trials" / "README.md").read_text(encoding="utf-8"))
    by_head = {h.split(" (")[0]: rows for h, rows in tables.items()}
    assert set(by_head["Top level"]) == set(plan._TOP_KEYS)
    assert set(by_head["`[defaults]`"]) == set(plan._DEFAULT_KEYS)
    assert set(by_head["`[[analysis]]`"]) == set(plan._ANALYSIS_KEYS)
    assert set(by_head["`[[narrative]]`"]) == set(plan._NARRATIVE_KEYS)
    assert set(by_head["`[[narrative.combine]]`"]) == set(plan._COMBINE_KEYS)
    d, a = by_head["`[defaults]`"], by_head["`[[analysis]]`"]
    for key, values in (("method", vocab.METHODS), ("test", vocab.TESTS), ("pi", vocab.PREDICTION_INTERVALS),
                        ("tau_prior", vocab.TAU_PRIORS), ("sensitivity", plan.SENSITIVITY_OPTIONS)):
        assert set(re.findall(r"`([\w-]+)`", d[key].split("|")[3])) >= set(values), key
    assert f"`{plan.DEFAULT_SETTINGS['method']}` (default" in d["method"]
    assert f"`{plan.DEFAULT_SETTINGS['test']}` (default" in d["test"]
    assert f"`{plan.DEFAULT_SETTINGS['pi']}` (default" in d["pi"]
    assert set(re.findall(r"`(\w+)`", a["headline"].split("|")[3])) == set(vocab.HEADLINE_CHOICES)
    assert set(re.findall(r"`(\w+)`", a["measure"].split("|")[3])) == set(vocab.POOLABLE_MEASURES)
    assert set(re.findall(r"`(\w+)`", a["select"].split("|")[3])) - {"select"} >= set(plan.SELECT_COLUMNS)
    for c in ("_CHOICE_KEYS", "_SWAP_KEYS"):
        for k in getattr(plan, c):
            assert f"{k} = " in a["include" if c == "_CHOICE_KEYS" else "swap"], (c, k)


@pytest.mark.parametrize("authors,trial,expected", [
    ("Smith MR et al.", "nmCRPC-BMFS", "Smith"),
    ("Children's Oncology Group (AOST1321 investigators)", "AOST1321", "Children's Oncology Group"),
    ("D-BEYOND investigators", "D-BEYOND", ""),      # the group only repeats the trial
    ("Amgen (sponsor)", "AMG-20120249", "Amgen"),
    ("Gnant M, Pfeiler G, Steger GG", "ABCSG-18", "Gnant"),
])
def test_label_author(authors, trial, expected):
    from metaanalysis.render.labels import label_author

    assert label_author(authors, trial) == expected


def test_study_labels_of_the_shipped_registry_are_readable(built):
    """Trial + first author + year, no endpoint suffix and no doubled group name (issue #16:
    "nmCRPC-BMFS (Smith 2012)" on the OS page, "AOST1321 (Children's Oncology Group (AOST1321
    investigators) 2021)"). Rows from trials/registry.csv: NMCRPC-OS-2012 (trial_id nmCRPC-BMFS,
    Smith MR et al. 2012), AOST1321-EFS4-C1, DBEYOND-KI67 (D-BEYOND investigators 2017)."""
    from metaanalysis.registry import load_registry
    from metaanalysis.render.labels import RowText

    rows = RowText(load_registry(REGISTRY))
    assert rows.label("NMCRPC-OS-2012") == "nmCRPC (Smith 2012)"
    assert rows.label("AOST1321-EFS4-C1") == "AOST1321 (Children's Oncology Group 2021)"
    assert rows.label("DBEYOND-KI67") == "D-BEYOND (2017)"
    assert rows.label("ABCSG18-DFS-2019") == "ABCSG-18 (Gnant 2019)"
    out, _ = built
    page = (out / "os-placebo.html").read_text(encoding="utf-8")
    assert "nmCRPC (Smith 2012)" in page and "nmCRPC-BMFS (Smith" not in page
    assert "investigators) 20" not in "".join(p.read_text(encoding="utf-8") for p in out.glob("*.html"))


def test_glossary_page_is_linked_from_every_page(built):
    """A glossary (issue #16): plain words beside the methods terms, linked from every page."""
    out, summary = built
    page = (out / "glossary.html").read_text(encoding="utf-8")
    assert "glossary.html" in summary.files
    for plain, term, _ in words.GLOSSARY:
        assert str(escape(plain)) in page and str(escape(term)) in page
    terms = " ".join(t for _, t, _ in words.GLOSSARY)
    for needed in ("prediction interval", "τ²", "I²", "HKSJ", "random-effects", "GRADE", "RoB 2",
                   "simulated coverage", "Monte-Carlo standard error"):
        assert needed in terms, needed
    for html in out.glob("*.html"):
        assert 'href="glossary.html"' in html.read_text(encoding="utf-8"), html.name
