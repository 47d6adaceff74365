"""Living evidence (issue #17): snapshots, the changelog, ``changes.json`` and ``metaanalysis diff``.

Reference values come from the shipped registry (trials/registry.csv): ZASOLID-SRE-2011 (line 24)
reports HR 0.84, 95% CI 0.71 to 0.98; the SRE analysis pools it with ZABREAST-SRE-2010 and
ZACRPC-SRE-2011 (HR 0.82, 0.71 to 0.95 each) to a pooled CI 0.683 to 0.999 (p = 0.0495;
metaanalysis.pool, itself checked against metafor in tests/test_conformance.py). Raising the
ZASOLID upper bound to 1.10 widens its SE to (log 1.10 - log 0.71) / (2 z_0.975) and moves the pooled
CI across 1 (0.671 to 1.010, p = 0.055).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import shutil
import subprocess
from pathlib import Path
from statistics import NormalDist

import pytest

from metaanalysis import vocab
from metaanalysis.analysis import analyse
from metaanalysis.changes import (Baseline, StudyChangeKind, compare, cumulative_changes, since_previous_build,
                                  snapshot_from_evidence, snapshot_from_reports)
from metaanalysis.cli import main
from metaanalysis.report.build import build_reports
from metaanalysis.vocab import Change

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"
DROP_ROW = "ZABREAST-SRE-2010"     # Stopeck 2010, the first of sre-zoledronic's three studies in the cumulative order
SRE_ROW = "ZASOLID-SRE-2011"        # trials/registry.csv: HR 0.84 (0.71 to 0.98), confirmed in the Xgeva label §14 Table 2


def _edit_registry(dest: Path, edit) -> Path:
    """A copy of the shipped registry with ``edit(header, rows)`` applied (rows: list of lists)."""
    rows = list(csv.reader(io.StringIO(REGISTRY.read_text(encoding="utf-8"))))
    rows = edit(rows[0], rows[1:])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    dest.write_text(buf.getvalue(), encoding="utf-8")
    return dest


def _set_cell(row_id: str, column: str, value: str):
    def edit(header, rows):
        for r in rows:
            if r[0] == row_id:
                r[header.index(column)] = value
        return [header] + rows
    return edit


def _drop_row(row_id: str):
    return lambda header, rows: [header] + [r for r in rows if r[0] != row_id]


def _hashes(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def shipped():
    return analyse(REGISTRY, PLAN)


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    """The registry with ZASOLID-SRE-2011's CI upper bound 0.98 -> 1.10, and its evidence."""
    path = _edit_registry(tmp_path_factory.mktemp("corrected") / "registry.csv", _set_cell(SRE_ROW, "ci_upper", "1.10"))
    return path, analyse(path, PLAN)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "reports"
    build_reports(REGISTRY, PLAN, out)
    return out


# ---------------------------------------------------------------------------------------------
# snapshots
# ---------------------------------------------------------------------------------------------


def test_snapshot_from_evidence_equals_snapshot_from_the_report_folder(shipped, built):
    from_tree, from_files = snapshot_from_evidence(shipped), snapshot_from_reports(built)
    assert from_tree == from_files
    assert [a.id for a in from_tree.analyses] == sorted(a.id for a in shipped.analyses)
    assert from_tree.registry_sha256 == hashlib.sha256(REGISTRY.read_bytes()).hexdigest()
    sre = from_tree.get("sre-zoledronic")
    row = dict(next(s for s in sre.studies if s.row_id == SRE_ROW).registry)
    assert (row["estimate"], row["ci_lower"], row["ci_upper"], row["status"]) == (0.84, 0.71, 0.98, "confirmed")
    assert sre.k == 3 and sre.headline is vocab.Headline.RANDOM
    assert math.exp(sre.lead.ci_upper) == pytest.approx(0.99899, abs=1e-5)


def test_report_json_records_each_pooled_rows_registry_fields(built):
    page = json.loads((built / "dfs.json").read_text(encoding="utf-8"))
    st = next(s for s in page["studies"] if s["row_id"] == "ABCSG18-DFS-2019")
    # trials/registry.csv line 3: HR 0.823 (0.69 to 0.98), p 0.026, n 1711 / 1709, events 240 / 287
    assert st["registry"]["estimate"] == 0.823 and st["registry"]["ci_upper"] == 0.98
    assert st["registry"]["p_value"] == "0.026" and st["registry"]["n_int"] == 1711
    assert (st["registry"]["events_int"], st["registry"]["events_ctl"]) == (240, 287)
    assert set(st["registry"]) == set(vocab.CHANGE_FIELDS)


# ---------------------------------------------------------------------------------------------
# the changelog
# ---------------------------------------------------------------------------------------------


def test_identical_snapshots_give_an_empty_changelog(shipped):
    snap = snapshot_from_evidence(shipped)
    log = compare(snap, snap)
    assert log.analyses == () and not log.changed and not log.conclusions_changed
    assert log.to_dict()["status"] == "unchanged"


def test_a_corrected_ci_that_crosses_1_is_a_conclusion_change(shipped, corrected):
    log = compare(snapshot_from_evidence(shipped), snapshot_from_evidence(corrected[1]))
    assert [a.id for a in log.analyses] == ["sre-zoledronic"]
    ac = log.get("sre-zoledronic")
    # the corrected row, 0.84 (0.71 to 1.10), is no longer centred in its CI: the registry warns, and
    # the warning travels with the row (a caveat added, which does not itself alter a conclusion)
    assert [c.code for c in ac.conclusions] == [Change.CI_NOW_CROSSES_NULL, Change.PI_NOW_CROSSES_NULL,
                                                 Change.NO_LONGER_SIGNIFICANT, Change.CAVEAT_ADDED]
    assert not ac.conclusions[3].alters_conclusion and "row-warning" in str(ac.conclusions[3].new)
    assert log.conclusions_changed and ac.conclusions_changed
    ci = ac.conclusions[0]
    assert math.exp(ci.old[1]) < 1 < math.exp(ci.new[1]) and ci.reference == 1.0
    assert ac.conclusions[2].old < 0.05 < ac.conclusions[2].new
    [sc] = ac.studies
    z = NormalDist().inv_cdf(0.975)
    assert (sc.row_id, sc.kind) == (SRE_ROW, StudyChangeKind.CHANGED)
    fields = {f.field: (f.old, f.new) for f in sc.fields}
    assert set(fields) == {"ci_upper", "vi"}           # the estimate (so yi) did not change
    assert fields["ci_upper"] == (0.98, 1.10)
    assert fields["vi"][1] == pytest.approx(((math.log(1.10) - math.log(0.71)) / (2 * z)) ** 2, rel=1e-12)
    assert [n.field for n in ac.numbers] == ["estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "pvalue"]
    # cumulative evidence in publication order: only the step that adds the corrected row moved
    path = cumulative_changes(ac)
    assert [(st.row_id, st.moved, st.change) for st in path] == [
        ("ZABREAST-SRE-2010", False, None), ("ZACRPC-SRE-2011", False, None),
        (SRE_ROW, True, StudyChangeKind.CHANGED)]
    assert math.exp(path[0].new.estimate) == pytest.approx(0.82, rel=1e-12)   # one study: its own HR
    assert path[2].new.ci_upper == ac.new.lead.ci_upper                      # the last step is the pooled CI


def test_a_single_study_whose_ci_now_crosses_1(shipped, tmp_path):
    # ABCSG18-FRACTURE-2015 (registry line 2): HR 0.50, p < 0.0001, no CI: the SE comes from the p bound
    # (CI 0.35 to 0.71). With p = 0.20 the SE is |log 0.5| / z_0.90 and the Wald CI 0.17 to 1.44 holds 1.
    edited = analyse(_edit_registry(tmp_path / "registry.csv",
                                    _set_cell("ABCSG18-FRACTURE-2015", "p_value", "0.20")), PLAN)
    ac = compare(snapshot_from_evidence(shipped), snapshot_from_evidence(edited)).get("fracture")
    assert [c.code for c in ac.conclusions if c.alters_conclusion] == [Change.CI_NOW_CROSSES_NULL,
                                                                       Change.NO_LONGER_SIGNIFICANT]
    sig = next(c for c in ac.conclusions if c.code is Change.NO_LONGER_SIGNIFICANT)
    assert sig.old < 0.0001 and sig.new == pytest.approx(0.20, rel=1e-9)   # the Wald p gives back the p used
    se = abs(math.log(0.5)) / NormalDist().inv_cdf(0.90)
    assert math.exp(ac.new.lead.ci_upper) == pytest.approx(0.5 * math.exp(NormalDist().inv_cdf(0.975) * se),
                                                           rel=1e-9)


def test_removing_and_adding_a_study(shipped, tmp_path):
    fewer = analyse(_edit_registry(tmp_path / "registry.csv", _drop_row(DROP_ROW)), PLAN)
    full, less = snapshot_from_evidence(shipped), snapshot_from_evidence(fewer)
    removed = compare(full, less)
    assert [a.id for a in removed.analyses] == ["sre-zoledronic"]
    ac = removed.get("sre-zoledronic")
    assert [(s.row_id, s.kind) for s in ac.studies] == [(DROP_ROW, StudyChangeKind.REMOVED)]
    assert ac.numbers[0].field == "k" and (ac.numbers[0].old, ac.numbers[0].new) == (3, 2)
    # k = 3 -> 2: no random-effects interval leads any more (vocab.RANDOM_HEADLINE_MIN_K = 3): the
    # Bayesian posterior under the half-normal(0.5) prior on τ does, and is the lead compared
    head = [c for c in ac.conclusions if c.code is Change.HEADLINE_CHANGED]
    assert [(c.old, c.new) for c in head] == [("random-effects", "bayesian")]
    post = fewer.analysis("sre-zoledronic").bayes
    assert (ac.new.lead.estimate, ac.new.lead.ci_upper, ac.new.lead.pvalue) == (post.mu_median, post.mu_ci_upper,
                                                                                 None)
    path = cumulative_changes(ac)
    gone = [st for st in path if st.row_id == DROP_ROW]
    assert len(gone) == 1 and gone[0].new is None and gone[0].change is StudyChangeKind.REMOVED
    assert path[-1].moved and path[-1].old is not None and path[-1].new is not None
    added = compare(less, full).get("sre-zoledronic")
    assert [(s.row_id, s.kind) for s in added.studies] == [(DROP_ROW, StudyChangeKind.ADDED)]
    assert [(c.old, c.new) for c in added.conclusions if c.code is Change.HEADLINE_CHANGED] == \
        [("bayesian", "random-effects")]


def test_conclusion_codes_on_constructed_snapshots(shipped):
    snap = snapshot_from_evidence(shipped)
    sre = snap.get("sre-zoledronic")
    flipped = dataclasses.replace(sre, lead=dataclasses.replace(sre.lead, estimate=0.1, ci_lower=-0.1, ci_upper=0.3),
                                  caveats=tuple(c for c in sre.caveats if c != "few-studies") + ("undercoverage",),
                                  settings=("DL",) + sre.settings[1:])
    new = dataclasses.replace(snap, analyses=tuple(flipped if a.id == sre.id else a for a in snap.analyses
                                                   if a.id != "fracture"))
    log = compare(snap, new, thresholds={"sre-zoledronic": 0.9})
    codes = [c.code for c in log.get("sre-zoledronic").conclusions]
    assert codes == [Change.SETTINGS_CHANGED, Change.CI_NOW_CROSSES_NULL, Change.DIRECTION_CHANGED,
                     Change.THRESHOLD_CROSSED, Change.CAVEAT_ADDED, Change.CAVEAT_REMOVED]
    assert [c.alters_conclusion for c in log.get("sre-zoledronic").conclusions] == [False, True, True, True,
                                                                                   False, False]
    assert [c.code for c in log.get("fracture").conclusions] == [Change.ANALYSIS_REMOVED]
    assert [a.id for a in log.analyses] == ["fracture", "sre-zoledronic"]
    # only caveats or settings changed: the numbers are reported, no conclusion changed
    quiet = dataclasses.replace(sre, caveats=sre.caveats + ("undercoverage",))
    log2 = compare(snap, dataclasses.replace(snap, analyses=tuple(quiet if a.id == sre.id else a
                                                                  for a in snap.analyses)))
    assert log2.changed and not log2.conclusions_changed


def test_changelog_is_deterministic_and_json_ready(shipped, corrected):
    a = compare(snapshot_from_evidence(shipped), snapshot_from_evidence(corrected[1])).to_dict()
    b = compare(snapshot_from_evidence(shipped), snapshot_from_evidence(corrected[1])).to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    sre = a["analyses"][0]
    assert sre["old"]["natural"]["ci_upper"] == pytest.approx(0.99899, abs=1e-5)
    assert sre["new"]["natural"]["ci_upper"] == pytest.approx(1.01049, abs=1e-5)
    assert sre["conclusions"][0]["new_natural"][1] == sre["new"]["natural"]["ci_upper"]


def test_a_build_without_registry_fields_compares_the_effects_only(shipped, built, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(built, old)
    for p in old.glob("*.json"):
        d = json.loads(p.read_text(encoding="utf-8"))
        for st in d.get("studies", []):
            st.pop("registry", None)
        p.write_text(json.dumps(d), encoding="utf-8")
    assert compare(snapshot_from_reports(old), snapshot_from_evidence(shipped)).analyses == ()


def test_no_previous_or_an_unreadable_previous_build(shipped, built, tmp_path):
    snap = snapshot_from_evidence(shipped)
    assert since_previous_build(tmp_path / "nothing", snap).baseline is Baseline.NONE
    broken = tmp_path / "broken"
    shutil.copytree(built, broken)
    (broken / "bmfs.json").write_text("{not json", encoding="utf-8")
    log = since_previous_build(broken, snap)
    assert log.baseline is Baseline.UNREADABLE and log.to_dict()["status"] == "previous-build-unreadable"


# ---------------------------------------------------------------------------------------------
# report integration
# ---------------------------------------------------------------------------------------------


def test_fresh_build_writes_a_valid_empty_changes_json_and_no_section(built):
    d = json.loads((built / "changes.json").read_text(encoding="utf-8"))
    assert (d["status"], d["baseline"], d["analyses"], d["old"]) == ("no-previous-build", "no-previous-build", [],
                                                                     None)
    assert "What changed" not in (built / "index.html").read_text(encoding="utf-8")


def test_identical_rebuild_is_no_change_and_byte_identical(built, tmp_path):
    out = tmp_path / "reports"
    shutil.copytree(built, out)
    build_reports(REGISTRY, PLAN, out)
    first, again = _hashes(built), _hashes(out)
    assert {k for k in first if first[k] != again[k]} == {"changes.json", "index.html"}
    d = json.loads((out / "changes.json").read_text(encoding="utf-8"))
    assert (d["status"], d["conclusions_changed"], d["analyses"]) == ("unchanged", False, [])
    assert "No result changed since the previous build." in (out / "index.html").read_text(encoding="utf-8")
    build_reports(REGISTRY, PLAN, out)             # the steady state: every byte the same
    assert _hashes(out) == again


def test_report_over_a_previous_build_says_what_changed(built, corrected, tmp_path):
    out = tmp_path / "reports"
    shutil.copytree(built, out)
    build_reports(corrected[0], PLAN, out)
    d = json.loads((out / "changes.json").read_text(encoding="utf-8"))
    assert d["status"] == "changed" and d["conclusions_changed"] is True
    assert [a["id"] for a in d["analyses"]] == ["sre-zoledronic"]
    assert [c["code"] for c in d["analyses"][0]["conclusions"]] == ["ci-now-crosses-null", "pi-now-crosses-null",
                                                                    "no-longer-significant", "caveat-added"]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "What changed" in index and "The 95% CI now includes HR = 1 (no effect): 0.683 to 0.999 → 0.671 to 1.010" \
        in index
    page = (out / "sre-zoledronic.html").read_text(encoding="utf-8")
    assert "What changed" in page and "CI upper bound 0.98 → 1.1" in page
    assert "Cumulative evidence" in page and "corrected in this build" in page
    assert "What changed" not in (out / "bmfs.html").read_text(encoding="utf-8")
    # the same registry again (a forced rebuild, a new package version): what the correction
    # changed is carried forward, measured from the last build with other inputs
    before = json.loads((out / "changes.json").read_text(encoding="utf-8"))
    build_reports(corrected[0], PLAN, out)
    again = json.loads((out / "changes.json").read_text(encoding="utf-8"))
    assert (again["status"], again["carried_forward"], before["carried_forward"]) == ("changed", True, False)
    assert again["analyses"] == before["analyses"] and again["old"] == before["old"]
    assert again["baseline_snapshot"] == before["baseline_snapshot"]
    page = (out / "sre-zoledronic.html").read_text(encoding="utf-8")
    assert "Since the last build with a different registry or plan, a conclusion of this analysis changed." in page
    assert "CI upper bound 0.98 → 1.1" in page
    steady = _hashes(out)
    build_reports(corrected[0], PLAN, out)          # and from then on every byte stays the same
    assert _hashes(out) == steady
    # the registry changed back: compared with the previous build again, not carried
    build_reports(REGISTRY, PLAN, out)
    back = json.loads((out / "changes.json").read_text(encoding="utf-8"))
    assert back["carried_forward"] is False and back["old"]["registry_sha256"] == before["new"]["registry_sha256"]


def test_snapshot_round_trips_through_its_dict(built):
    from metaanalysis.changes import Snapshot

    snap = snapshot_from_reports(built)
    assert Snapshot.from_dict(json.loads(json.dumps(snap.to_dict()))) == snap


# ---------------------------------------------------------------------------------------------
# metaanalysis diff
# ---------------------------------------------------------------------------------------------


def test_diff_two_registries_exits_1_on_a_conclusion_change(corrected, capsys):
    assert main(["diff", str(REGISTRY), str(corrected[0]), "--plan", str(PLAN), "--format", "json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["conclusions_changed"] is True and [a["id"] for a in d["analyses"]] == ["sre-zoledronic"]
    assert main(["diff", str(REGISTRY), str(corrected[0]), "--plan", str(PLAN)]) == 1
    text = capsys.readouterr().out
    assert text.startswith("1 analysis changed; its conclusion changed.")
    assert f"row {SRE_ROW}: CI upper bound 0.98 → 1.1" in text
    assert "! No longer statistically significant at α = 0.05 (p 0.0495 → 0.0551)." in text


def test_diff_report_folders_and_a_folder_against_its_registry(built, capsys):
    assert main(["diff", str(built), str(built)]) == 0
    assert capsys.readouterr().out == "No analysis changed.\n"
    assert main(["diff", str(built), str(REGISTRY), "--plan", str(PLAN), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["analyses"] == []


@pytest.mark.parametrize("argv", [["diff"], ["diff", "only-one"], ["diff", "nowhere-a", "nowhere-b"],
                                  ["diff", "--rev", "HEAD"], ["diff", "a", "b", "--rev", "A..B"]])
def test_diff_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage error" in capsys.readouterr().err


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_diff_between_two_git_revisions(tmp_path, monkeypatch, capsys):
    trials = tmp_path / "trials"
    trials.mkdir()
    shutil.copy(REGISTRY, trials / "registry.csv")
    shutil.copy(PLAN, trials / "analyses.toml")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "trials")
    _git(tmp_path, "commit", "-qm", "shipped")
    a = _git(tmp_path, "rev-parse", "HEAD")
    _edit_registry(trials / "registry.csv", _set_cell(SRE_ROW, "ci_upper", "1.10"))
    _git(tmp_path, "commit", "-qam", "corrected ZA-SOLID CI")
    monkeypatch.chdir(tmp_path)
    assert main(["diff", "--rev", f"{a}..HEAD", "--format", "json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert [c["code"] for c in d["analyses"][0]["conclusions"]] == ["ci-now-crosses-null", "pi-now-crosses-null",
                                                                    "no-longer-significant", "caveat-added"]
    assert d["old"]["registry_sha256"] == hashlib.sha256(REGISTRY.read_bytes()).hexdigest()
    assert main(["diff", "--rev", "HEAD~1..nosuchrev"]) == 2
    assert "nosuchrev" in capsys.readouterr().err


def test_diff_with_a_broken_registry_exits_2_not_1(tmp_path, capsys):
    """A data error must not look like a changed conclusion to a CI gate on exit 1."""
    broken = tmp_path / "registry.csv"
    rows = list(csv.reader(io.StringIO(REGISTRY.read_text(encoding="utf-8"), newline="")))
    col = rows[0].index("ci_lower")
    line = next(i for i, r in enumerate(rows) if i and r[col].replace(".", "").isdigit())
    rows[line][col] = "not-a-number"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    broken.write_text(buf.getvalue(), encoding="utf-8")
    assert main(["diff", str(REGISTRY), str(broken), "--plan", str(PLAN)]) == 2
    err = capsys.readouterr().err
    assert f"{broken}:{line + 1}:{col + 1}" in err and "nothing compared" in err
