"""``metaanalysis batch``: many registries, incremental stamps, worker processes, Dask.

The registries are synthetic (benchmarks/make_synthetic.py, fixed seeds); the broken one has
a CI whose lower bound exceeds the estimate (an error of the registry validator) at a known
line and column.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from metaanalysis import batch
from metaanalysis.cli import main
from metaanalysis.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_synthetic", ROOT / "benchmarks" / "make_synthetic.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)

# A stand-in builder (same contract as metaanalysis.report.build.build_reports): validates the
# registry for real (so a bad registry raises the real ProblemError), writes one file per
# analysis atomically, and the plot workers it was given (``jobs``) into jobs.txt. Importable by
# "spawn" workers as ``test_batch:fake_build``.
FAKE = "test_batch:fake_build"


def fake_build(registry_path, plan_path, out_dir, *, jobs=None):
    reg = load_registry(registry_path)
    ids = [ln.split('"')[1] for ln in Path(plan_path).read_text().splitlines() if ln.startswith("id = ")]
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for a in ids:
        (tmp / f"{a}.html").write_text(f"<p>{a} of {len(reg)} rows</p>")
    (tmp / "index.html").write_text("<p>" + ", ".join(ids) + "</p>")
    (tmp / "jobs.txt").write_text(repr(jobs))
    (tmp / "results.csv").write_text("analysis_id\n" + "".join(f"{a}\n" for a in ids))  # read by the overview
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return SimpleNamespace(n_analyses=len(ids))


def crash_build(registry_path, plan_path, out_dir, *, jobs=None):
    """Kills its worker process when the registry directory is named 'crash'."""
    if Path(registry_path).parent.name == "crash":
        os._exit(3)
    return fake_build(registry_path, plan_path, out_dir, jobs=jobs)


BAD_LINE = 3  # header is line 1; row 2 of the file is line 3


def _break(dirpath: Path) -> None:
    """Make row 2's ci_lower larger than its estimate (a validator error at line 3, column ci_lower)."""
    p = dirpath / "registry.csv"
    lines = p.read_text().splitlines(keepends=True)
    cols = lines[0].rstrip("\n").split(",")
    cells = lines[BAD_LINE - 1].rstrip("\n").split(",")
    cells[cols.index("ci_lower")] = "9.5"
    lines[BAD_LINE - 1] = ",".join(cells) + "\n"
    p.write_text("".join(lines))


SENS = ("leave-one-out",)  # keep the real builds small: one sensitivity analysis
CI_LOWER_COL = 19  # 1-based position of ci_lower in trials/schema.json's column order


@pytest.fixture
def three(tmp_path):
    good_a = synth.make_registry_dir(tmp_path / "in" / "alpha", 2, seed=11, k_max=4, sensitivity=SENS)
    good_b = synth.make_registry_dir(tmp_path / "in" / "beta", 3, seed=12, k_max=4, layout="trials", sensitivity=SENS)
    bad = synth.make_registry_dir(tmp_path / "in" / "gamma", 2, seed=13, k_max=4, sensitivity=SENS)
    _break(bad)
    return good_a, good_b, bad, tmp_path / "out"


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_column_constant_matches_schema():
    assert synth._columns().index("ci_lower") + 1 == CI_LOWER_COL


def test_good_bad_unchanged_force(three, capsys):
    """With the real report builder, in-process."""
    a, b, bad, out = three
    summ = batch.run_batch([a, b, bad], out, jobs=1, stream=io.StringIO())
    assert [r.status for r in summ.results] == ["built", "built", "failed"]
    assert [r.n_analyses for r in summ.built] == [2, 3]
    assert summ.exit_code == 1
    fail = summ.failed[0]
    assert fail.name == "gamma"
    # the first problem names the file, the line and the column of the bad cell
    assert fail.reason.startswith(f"{bad / 'registry.csv'}:{BAD_LINE}:{CI_LOWER_COL}: error:"), fail.reason
    for f in ("index.html", "results.csv", "a0000.html", "a0000.json", "a0001.html"):
        assert (out / "alpha" / f).is_file(), f
    assert (out / "beta" / "a0002.html").is_file() and not (out / "beta" / "a0003.html").exists()
    assert not (out / "gamma").exists()
    for name in ("alpha", "beta"):
        stamp = (out / name / batch.STAMP_NAME).read_text().strip()
        assert len(stamp) == 64 and stamp == batch.plan_jobs([out.parent / "in" / name], out)[0].digest

    before = _mtimes(out)
    summ2 = batch.run_batch([a, b, bad], out, jobs=1, stream=io.StringIO())
    assert [r.status for r in summ2.results] == ["unchanged", "unchanged", "failed"]
    assert _mtimes(out) == before  # nothing rewritten, not even the stamps

    # the bad registry fixed -> only it is built
    synth.make_registry_dir(bad, 2, seed=13, k_max=4, sensitivity=SENS)
    summ3 = batch.run_batch([a, b, bad], out, jobs=1, stream=io.StringIO())
    assert [r.status for r in summ3.results] == ["unchanged", "unchanged", "built"]

    summ4 = batch.run_batch([a, b, bad], out, jobs=1, force=True, stream=io.StringIO())
    assert [r.status for r in summ4.results] == ["built"] * 3
    after = _mtimes(out)
    assert after["alpha/index.html"] > before["alpha/index.html"]
    assert after["alpha/a0000.html"] > before["alpha/a0000.html"]


def test_changed_plan_or_toolkit_rebuilds(three, monkeypatch):
    a, _, _, out = three
    batch.run_batch([a], out, builder=FAKE, stream=io.StringIO())
    (a / "analyses.toml").write_text((a / "analyses.toml").read_text() + "\n# edited\n")
    assert batch.run_batch([a], out, builder=FAKE, stream=io.StringIO()).results[0].status == "built"
    assert batch.run_batch([a], out, builder=FAKE, stream=io.StringIO()).results[0].status == "unchanged"
    monkeypatch.setattr(batch, "toolkit_hash", lambda: "0" * 64)  # a new toolkit version / code
    assert batch.run_batch([a], out, builder=FAKE, stream=io.StringIO()).results[0].status == "built"
    assert batch.run_batch([a], out, builder=FAKE, stream=io.StringIO()).results[0].status == "unchanged"


def test_deleted_reports_are_rebuilt(three):
    a, _, _, out = three
    batch.run_batch([a], out, builder=FAKE, stream=io.StringIO())
    for p in (out / "alpha").iterdir():
        if p.name != batch.STAMP_NAME:
            p.unlink()
    assert batch.run_batch([a], out, builder=FAKE, stream=io.StringIO()).results[0].status == "built"


def test_two_worker_processes(three):
    a, b, bad, out = three
    log = io.StringIO()
    summ = batch.run_batch([a, b, bad], out, jobs=2, stream=log, progress=False)  # the real builder
    assert [r.status for r in summ.results] == ["built", "built", "failed"]
    assert {r.name: r.n_analyses for r in summ.built} == {"alpha": 2, "beta": 3}
    assert f":{BAD_LINE}:{CI_LOWER_COL}: error:" in summ.failed[0].reason
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and all(ln.startswith(("[1/3] ", "[2/3] ", "[3/3] ")) for ln in lines)
    assert any(ln.endswith("s)") and "built alpha (2 analyses, " in ln for ln in lines)
    assert (out / "beta" / "a0002.html").is_file() and (out / "alpha" / batch.STAMP_NAME).is_file()
    assert any("FAILED gamma (1 problem: listed in the summary)" in ln for ln in lines)


def test_builder_gets_its_share_of_the_cpus(three):
    """With N batch workers each builder may use CPUs // N plot workers (at least 1), passed as
    ``jobs=``; in-process the builder chooses (``jobs=None``)."""
    from metaanalysis.runtime import cpu_count

    a, b, _, out = three
    batch.run_batch([a, b], out / "two", jobs=2, builder=FAKE, stream=io.StringIO())
    share = max(1, cpu_count() // 2)
    assert [(out / "two" / n / "jobs.txt").read_text() for n in ("alpha", "beta")] == [repr(share)] * 2
    batch.run_batch([a, b], out / "one", jobs=1, builder=FAKE, stream=io.StringIO())
    assert [(out / "one" / n / "jobs.txt").read_text() for n in ("alpha", "beta")] == ["None"] * 2


def test_worker_crash_fails_only_that_directory(tmp_path):
    dirs = [synth.make_registry_dir(tmp_path / n, 1, seed=i, k_max=4) for i, n in enumerate(["ok1", "crash", "ok2"])]
    summ = batch.run_batch(dirs, tmp_path / "out", jobs=2, builder="test_batch:crash_build", stream=io.StringIO())
    assert {r.name: r.status for r in summ.results} == {"ok1": "built", "crash": "failed", "ok2": "built"}
    assert "worker died" in summ.failed[0].reason


def test_cli_exit_codes_and_summary(three, capsys, monkeypatch):
    a, b, bad, out = three
    monkeypatch.setattr(batch, "DEFAULT_BUILDER", FAKE)
    assert main(["batch", str(a), str(b), str(bad), "--out", str(out)]) == 1
    cap = capsys.readouterr()
    assert "batch: 2 built (5 analyses), 0 unchanged, 1 failed" in cap.out
    problem = f"{bad / 'registry.csv'}:{BAD_LINE}:{CI_LOWER_COL}: error:"
    assert f"FAILED {bad}: {problem}" in cap.out
    assert (cap.out + cap.err).count(problem) == 1  # printed once (issue #16: it was printed three times)
    assert f"overview: {out / 'index.html'}" in cap.out
    assert "[3/3]" in cap.err  # plain lines: stderr is not a terminal under pytest
    assert main(["batch", str(a), str(b), "--out", str(out)]) == 0
    assert "0 built (0 analyses), 2 unchanged, 0 failed" in capsys.readouterr().out
    # usage errors: exit 2, nothing built
    assert main(["batch", str(a), str(a.parent / "nope"), "--out", str(out / "x")]) == 2
    assert "nope: no such directory" in capsys.readouterr().err
    empty = a.parent / "empty"
    empty.mkdir()
    assert main(["batch", str(empty), "--out", str(out / "x")]) == 2
    assert "no registry.csv" in capsys.readouterr().err
    assert main(["batch", str(a), "-j", "0", "--out", str(out / "x")]) == 2
    assert not (out / "x").exists()


def test_progress_bar_on_a_terminal():
    """tqdm when asked for (the CLI asks when stderr is a TTY); failures still get a full line."""
    out = io.StringIO()
    bar = batch._Progress(2, out, bar=True)
    bar.update(batch.JobResult("a", "a", "o/a", "built", n_analyses=3, seconds=0.5))
    bar.update(batch.JobResult("b", "b", "o/b", "failed", reason="b/registry.csv:3:19: error: x",
                               problems=("b/registry.csv:3:19: error: x",)))
    bar.close()
    text = out.getvalue()
    assert "2/2" in text and "[2/2] FAILED b (1 problem: listed in the summary)" in text
    plain = io.StringIO()
    batch._Progress(1, plain).update(batch.JobResult("a", "a", "o/a", "unchanged"))  # StringIO is no TTY
    assert plain.getvalue() == "[1/1] unchanged a\n"


def test_duplicate_names_are_disambiguated(tmp_path):
    d1 = synth.make_registry_dir(tmp_path / "site1" / "data", 1, seed=1, k_max=4)
    d2 = synth.make_registry_dir(tmp_path / "site2" / "data", 1, seed=2, k_max=4)
    jobs = batch.plan_jobs([d1, d2, d1], tmp_path / "out", FAKE)
    assert [j.name for j in jobs] == ["site1__data", "site2__data"]  # and d1 given twice is built once
    assert [j.name for j in batch.plan_jobs([d2, d1], tmp_path / "out", FAKE)] == ["site2__data", "site1__data"]


def test_missing_dask_names_the_extra(monkeypatch, three):
    a, _, _, out = three
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(batch.BatchUsageError, match=r"install the 'dask' extra"):
        batch.run_batch([a], out, scheduler="tcp://127.0.0.1:1", builder=FAKE, stream=io.StringIO())


@pytest.mark.slow
def test_dask_local_cluster(tmp_path):
    import distributed  # the 'dask' extra is installed by make test: a missing one must fail, not skip
    dirs = [synth.make_registry_dir(tmp_path / f"r{i}", 2, seed=40 + i, k_max=4, sensitivity=SENS) for i in range(3)]
    _break(dirs[2])
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  host="127.0.0.1") as cluster:
        summ = batch.run_batch(dirs, tmp_path / "out", scheduler=cluster.scheduler_address, stream=io.StringIO())
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    assert [r.status for r in summ.results] == ["built", "built", "failed"]
    assert (len(summ.built), len(summ.unchanged), len(summ.failed)) == (2, 0, 1)
    assert {r.name: r.n_analyses for r in summ.built} == {"r0": 2, "r1": 2}
    for f in ("index.html", "results.csv", "a0001.html", batch.STAMP_NAME):
        assert (tmp_path / "out" / "r0" / f).is_file() and (tmp_path / "out" / "r1" / f).is_file(), f
    assert not (tmp_path / "out" / "r2").exists()
    assert f":{BAD_LINE}:{CI_LOWER_COL}: error:" in summ.failed[0].reason


def test_folder_without_plan_gets_the_batch_hint(tmp_path, capsys, monkeypatch):
    """A directory with a registry but no plan fails alone, and the hint names its own plan path,
    not the single-registry default trials/analyses.toml."""
    d = synth.make_registry_dir(tmp_path / "in" / "noplan", 1, seed=5, k_max=4)
    (d / "analyses.toml").unlink()
    monkeypatch.setattr(batch, "DEFAULT_BUILDER", FAKE)
    assert main(["batch", str(d), "--out", str(tmp_path / "out")]) == 1
    cap = capsys.readouterr()
    line = f"FAILED {d}: {d / 'analyses.toml'}:0:0: error: no analysis plan next to registry.csv"
    assert line in cap.out and f"write {d / 'analyses.toml'}" in cap.out
    assert "trials/analyses.toml" not in cap.out + cap.err


def test_more_problems_than_listed_are_counted():
    probs = tuple(f"r.csv:{i}:1: error: bad" for i in range(2, 15))
    summ = batch.BatchSummary((batch.JobResult("r", "r", "o/r", "failed", reason=probs[0], problems=probs),))
    lines = summ.format().splitlines()
    assert len(lines) == 1 + batch.MAX_LISTED + 1
    assert lines[-1] == ("  FAILED r: ... and 3 more problems (`metaanalysis validate` on its registry and plan "
                         "lists them all)")


def test_overview_page_across_registries(three):
    """OUT/index.html links every built report with its analyses and lists a failure's problem;
    a rerun (all unchanged) writes the same bytes; a foreign index.html is never replaced."""
    import re

    a, b, bad, out = three
    summ = batch.run_batch([a, b, bad], out, builder=FAKE, stream=io.StringIO())
    assert summ.overview == str(out / "index.html")
    page = (out / "index.html").read_text()
    assert '<meta name="generator" content="metaanalysis batch overview">' in page
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', page)
    assert links == [("alpha/index.html", "Synthetic evidence reports"), ("beta/index.html", "Synthetic evidence reports")]
    cells = re.findall(r'<td class="num">([^<]+)</td>', page)
    assert cells == ["2", "3", "–"]  # rows of each report's results.csv; gamma has no report
    assert f"{bad / 'registry.csv'}:{BAD_LINE}:{CI_LOWER_COL}: error:" in page
    assert "2 up to date (5 analyses), <strong>1 failed</strong>" in page
    first = (out / "index.html").read_bytes()
    again = batch.run_batch([a, b, bad], out, builder=FAKE, stream=io.StringIO())
    assert [r.status for r in again.results] == ["unchanged", "unchanged", "failed"]
    assert (out / "index.html").read_bytes() == first

    other = out.parent / "mine"
    other.mkdir()
    (other / "index.html").write_text("<p>somebody's page</p>")
    summ = batch.run_batch([a], other, builder=FAKE, stream=io.StringIO())
    assert summ.overview.startswith("not written: ") and "was not written by metaanalysis batch" in summ.overview
    assert (other / "index.html").read_text() == "<p>somebody's page</p>"


def test_default_batch_output_lies_outside_the_report_folder():
    """`report` replaces its --out as a whole and refuses a folder holding anything it did not
    write, so a batch built into reports/batch made the next `make report` fail: the batch
    default (CLI, run_batch, Makefile) is a folder of its own."""
    import inspect

    from metaanalysis.cli import build_parser

    p = build_parser()
    batch_out = p.parse_args(["batch", "x"]).out
    report_out = p.parse_args(["report"]).out
    assert Path(report_out) not in Path(batch_out).parents and Path(batch_out) != Path(report_out)
    assert inspect.signature(batch.run_batch).parameters["out"].default == batch_out
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    assert f"--out {batch_out} " in makefile
