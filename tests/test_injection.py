"""HTML and CSV injection through the reports (metaanalysis report).

Every free-text cell of the SHIPPED registry (trials/registry.csv) and every free-text value of
the shipped plan (titles, descriptions, reasons, favours, narrative text, combination labels)
gets an XSS payload appended; the reports are built and every HTML page is parsed with
``html.parser``: no ``<script>`` element, no ``on*`` attribute, no ``javascript:`` URL, and the
payloads are shown as text (escaped). ``results.csv`` cells that a spreadsheet would run as a
formula (``= + - @``) are prefixed with ``'`` (OWASP "CSV injection"), numbers such as -0.22 are not.

Payloads: the OWASP XSS filter evasion cheat sheet's basic forms
(https://cheatsheetseries.owasp.org/cheatsheets/XSS_Filter_Evasion_Cheat_Sheet.html).
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from metaanalysis.cli import main
from metaanalysis.vocab import EFFECT_MEASURES

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"

PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "javascript:alert(1)",
)
# Free-text columns of trials/schema.json (string type without enum or pattern). parent_row_id
# must name a row, so it is left alone.
TEXT_COLUMNS = ("trial_id", "trial_name", "patient_set", "population", "tumour_type", "intervention",
                "dose", "comparator", "endpoint_detail", "direction", "analysis_population", "report",
                "authors", "journal", "source_location", "notes")
# Columns the plan filters or groups on: one payload per distinct value, the plan's select
# lists rewritten to match, so every analysis still selects the same rows.
KEYED = {"trial_id", "patient_set", "population", "tumour_type", "comparator"}
PLAN_TEXT_KEYS = {"title", "description", "reason", "text", "label", "direction", "independent", "note", "source"}


# ------------------------------------------------------------------------------------------
# hostile inputs
# ------------------------------------------------------------------------------------------

def hostile_registry() -> tuple[str, dict[str, dict[str, str]]]:
    """The registry with a payload appended to every free-text cell -> (csv text, value maps)."""
    with open(REGISTRY, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames)
        rows = [dict(r) for r in reader]
    maps: dict[str, dict[str, str]] = {c: {} for c in KEYED}
    for i, r in enumerate(rows):
        for j, c in enumerate(TEXT_COLUMNS):
            v = r[c]
            if c in KEYED:
                m = maps[c]
                if v not in m:
                    m[v] = f"{v}{PAYLOADS[(len(m) + j) % len(PAYLOADS)]}"
                r[c] = m[v]
            elif v:
                r[c] = f"{v}{PAYLOADS[(i + j) % len(PAYLOADS)]}"
            else:
                r[c] = PAYLOADS[(i + j) % len(PAYLOADS)].lstrip("=+-@")
    for r in rows:  # parent_row_id may name a trial_id
        r["parent_row_id"] = maps["trial_id"].get(r["parent_row_id"], r["parent_row_id"])
        # direction of an effect row is read (issue #11): it must name the (hostile) intervention
        if r["measure"] in EFFECT_MEASURES:
            r["direction"] = f"{r['measure']} < 1 favours {r['intervention']} over {r['comparator']}"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue(), maps


def _toml_value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)      # a JSON string is a valid TOML basic string
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def dump_toml(doc: dict) -> str:
    """Enough of a TOML writer for an analysis plan (tables, arrays of tables, dotted select)."""
    out = []

    def table(t: dict, prefix: str):
        subs = []
        for k, v in t.items():
            if isinstance(v, dict) and k == "select":
                for c, vals in v.items():
                    out.append(f"select.{json.dumps(c)} = {_toml_value(vals)}")
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and k == "combine":
                subs.append((k, v))
            else:
                out.append(f"{json.dumps(k)} = {_toml_value(v)}")
        for k, v in subs:
            for x in v:
                out.append(f"\n[[{prefix}.{k}]]")
                table(x, f"{prefix}.{k}")

    for k, v in doc.items():
        if not isinstance(v, (dict, list)) or (isinstance(v, list) and not all(isinstance(x, dict) for x in v)):
            out.append(f"{json.dumps(k)} = {_toml_value(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            out.append(f"\n[{k}]")
            table(v, k)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for x in v:
                out.append(f"\n[[{k}]]")
                table(x, k)
    return "\n".join(out) + "\n"


def hostile_plan(maps: dict[str, dict[str, str]]) -> str:
    doc = tomllib.loads(PLAN.read_text(encoding="utf-8"))
    n = [0]

    def nxt() -> str:
        n[0] += 1
        return PAYLOADS[n[0] % len(PAYLOADS)]

    def walk(x):
        if isinstance(x, dict):
            for k, v in list(x.items()):
                if k in PLAN_TEXT_KEYS and isinstance(v, str):
                    x[k] = v.rstrip() + " " + nxt()
                elif k == "favours":
                    x[k] = [f + " " + nxt() for f in v]
                elif k == "select":
                    x[k] = {c: [maps.get(c, {}).get(s, s) for s in vals] for c, vals in v.items()}
                else:
                    walk(v)
        elif isinstance(x, list):
            for y in x:
                walk(y)

    walk(doc)
    return dump_toml(doc)


# ------------------------------------------------------------------------------------------
# HTML checks
# ------------------------------------------------------------------------------------------

class Audit(HTMLParser):
    """Collects script elements, on* attributes, javascript: URLs and the visible text."""

    URL_ATTRS = {"href", "src", "xlink:href", "action", "formaction", "data", "poster", "srcset"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[int] = []
        self.handlers: list[tuple[str, str, str]] = []
        self.js_urls: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.attr_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "base", "meta") and not (
                tag == "meta" and not any(k.lower() == "http-equiv" for k, _ in attrs)):
            self.scripts.append(self.getpos()[0])
        if tag == "img" and not (dict(attrs).get("src") or "").startswith("data:image/"):
            self.scripts.append(self.getpos()[0])  # figures are inline SVG or data: images
        for k, v in attrs:
            if k.lower().startswith("on"):
                self.handlers.append((tag, k, v or ""))
            if k.lower() in self.URL_ATTRS and re.sub(r"[\s\x00-\x1f]", "", (v or "")).lower().startswith(
                    ("javascript:", "vbscript:", "data:text/html")):
                self.js_urls.append((tag, k, v or ""))
            if v:
                self.attr_text.append(v)

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def hostile_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("inj")
    reg_text, maps = hostile_registry()
    (d / "registry.csv").write_text(reg_text, encoding="utf-8")
    (d / "analyses.toml").write_text(hostile_plan(maps), encoding="utf-8")
    out = d / "reports"
    code = main(["report", "--registry", str(d / "registry.csv"), "--plan", str(d / "analyses.toml"),
                 "--out", str(out)])
    assert code == 0, "the hostile (but valid) registry and plan must build"
    return out


def test_hostile_plan_is_the_shipped_plan_otherwise():
    # the serializer round-trips the shipped plan (only the payloads differ)
    doc = tomllib.loads(PLAN.read_text(encoding="utf-8"))
    assert tomllib.loads(dump_toml(doc)) == doc


def test_every_page_is_clean(hostile_build):
    pages = sorted(hostile_build.glob("*.html"))
    # the shipped plan: 4 analyses + 7 narratives + index + glossary (trials/analyses.toml)
    assert len(pages) == 13
    for p in pages:
        html = p.read_text(encoding="utf-8")
        a = Audit()
        a.feed(html)
        a.close()
        assert not a.scripts, f"{p.name}: <script>/<img>/<iframe> element(s) on lines {a.scripts}"
        assert not a.handlers, f"{p.name}: event-handler attributes {a.handlers[:5]}"
        assert not a.js_urls, f"{p.name}: javascript: URLs {a.js_urls[:5]}"
        assert "<script" not in html.lower()


def test_payloads_are_shown_as_text(hostile_build):
    text, attrs, raw = [], [], []
    for p in sorted(hostile_build.glob("*.html")):
        html = p.read_text(encoding="utf-8")
        a = Audit()
        a.feed(html)
        text.append("".join(a.text))
        attrs += a.attr_text
        raw.append(html)
    visible, raw = "\n".join(text), "\n".join(raw)
    for pl in PAYLOADS:
        assert pl in visible, f"payload {pl!r} is not displayed as text anywhere"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert re.search(r"(&#34;|&quot;)&gt;&lt;img src=x onerror=alert\(1\)&gt;", raw)


@pytest.mark.parametrize("column,value", [
    ("authors", "Smith MR et al."), ("journal", "Lancet 2012;379(9810):39-46"),
    ("notes", None), ("source_location", None), ("population", None), ("dose", None),
    ("endpoint_detail", None), ("analysis_population", None), ("report", None),
    ("intervention", None), ("comparator", None), ("trial_id", "nmCRPC-BMFS"),
])
def test_each_displayed_field_is_escaped_text(hostile_build, column, value):
    """The NMCRPC-OS-2012 row (Smith 2012, pooled in os-any-comparator) shows its own cell, payload included."""
    reg_text, _ = hostile_registry()
    row = next(r for r in csv.DictReader(io.StringIO(reg_text)) if r["row_id"] == "NMCRPC-OS-2012")
    cell = row[column]
    a = Audit()
    a.feed((hostile_build / "os-any-comparator.html").read_text(encoding="utf-8"))
    visible = " ".join(" ".join(a.text).split())
    assert " ".join(cell.split()) in visible, f"{column}: {cell[-60:]!r} not displayed"


def test_svg_text_from_data_is_escaped(hostile_build):
    """Forest-plot labels come from registry text (trial_id, authors) and plan favours."""
    html = (hostile_build / "os-any-comparator.html").read_text(encoding="utf-8")
    svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
    assert svgs, "no inline forest plot"
    for s in svgs:
        a = Audit()
        a.feed(s)
        assert not a.scripts and not a.handlers and not a.js_urls
        assert "<script" not in s.lower() and "<img" not in s.lower()
    # the figure's accessible name carries the (hostile) plan title, escaped inside one attribute
    a = Audit()
    a.feed(svgs[0])
    assert any(PAYLOADS[1] in v for v in a.attr_text), "title payload not in the SVG aria-label"


def test_doi_breaking_out_of_href(tmp_path):
    """A DOI passes its pattern (10.NNNN/ + non-space) yet holds markup: the href stays one attribute."""
    text = REGISTRY.read_text(encoding="utf-8")
    bad = '10.1016/"><svg/onload=alert(1)>'
    assert re.fullmatch(r"^(10\.[0-9]{4,9}/\S+)?$", bad)  # trials/schema.json doi pattern
    rows = list(csv.reader(io.StringIO(text)))
    h = rows[0]
    for r in rows[1:]:
        if r[0] == "NMCRPC-OS-2012":
            r[h.index("doi")] = bad
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (tmp_path / "registry.csv").write_text(buf.getvalue(), encoding="utf-8")
    out = tmp_path / "reports"
    assert main(["report", "--registry", str(tmp_path / "registry.csv"), "--plan", str(PLAN), "--out", str(out)]) == 0
    html = (out / "os-any-comparator.html").read_text(encoding="utf-8")
    a = Audit()
    a.feed(html)
    assert not a.handlers and not a.scripts
    assert "<svg/onload" not in html


# ------------------------------------------------------------------------------------------
# CSV formula injection
# ------------------------------------------------------------------------------------------

FORMULAS = ("=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0")


def test_results_csv_neutralises_formulas(tmp_path):
    doc = tomllib.loads(PLAN.read_text(encoding="utf-8"))
    for i, a in enumerate(doc["analysis"]):
        a["title"] = FORMULAS[i % len(FORMULAS)]
    (tmp_path / "analyses.toml").write_text(dump_toml(doc), encoding="utf-8")
    out = tmp_path / "reports"
    assert main(["report", "--registry", str(REGISTRY), "--plan", str(tmp_path / "analyses.toml"),
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text(encoding="utf-8"))))
    assert len(rows) == len(doc["analysis"])
    for i, r in enumerate(rows):
        assert r["title"] == "'" + FORMULAS[i % len(FORMULAS)], r["title"]
    numeric = ("estimate", "ci_lower", "ci_upper", "pvalue", "yi", "se", "tau2", "i2", "q")
    negatives = 0
    for r in rows:
        for k, v in r.items():
            if v and v[0] in "=+@":
                raise AssertionError(f"{k}: {v!r} would run as a formula")
            if v.startswith("-"):
                # a plain number such as -0.22 stays a number; anything else must be quoted
                assert re.fullmatch(r"-\d+(\.\d+)?(e-?\d+)?", v), f"{k}: {v!r}"
                negatives += 1
        for k in numeric:
            if r[k]:
                float(r[k])
    # yi (log HR) is negative for every HR below 1, e.g. sre-zoledronic yi = log(0.83) (metafor rma.uni
    # on the three SRE rows); each of the four shipped analyses (all HRs below 1) has a negative yi
    assert negatives >= 4
    yi = {r["analysis_id"]: float(r["yi"]) for r in rows if r["yi"]}
    assert yi["sre-zoledronic"] < 0 and not any(r["yi"].startswith("'") for r in rows)
