"""Rules for replacing a report directory (metaanalysis/report/output.py)."""

from __future__ import annotations

import os
import re

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


def test_legacy_look_alike_without_marker_is_refused_with_a_hint(tmp_path):
    """Issue #11 item 1: only the marker proves authorship; a directory that merely looks like an
    old build is refused (it may hold the registry being read), with a hint to delete it by hand."""
    d = tmp_path / "reports"
    d.mkdir()
    for name in ("index.html", "results.csv", "os.json", "os.html", "README.md"):
        (d / name).write_text("x")
    with pytest.raises(ProblemError, match="refusing to replace") as e:
        check_out_dir(d)
    assert "delete the directory yourself" in e.value.problems[0].hint
    assert e.value.problems[0].path == str(d)


def test_marker_lists_the_files_written(tmp_path):
    d = tmp_path / "reports"
    write_tree_atomic({"index.html": b"x", "a.json": b"{}"}, d)
    lines = (d / MARKER).read_text(encoding="utf-8").splitlines()
    assert lines[-2:] == ["a.json", "index.html"]


@pytest.mark.parametrize("added", ["notes.txt", "registry.csv", "sub/"])
def test_file_added_to_a_marked_build_is_refused_by_name(tmp_path, added):
    d = tmp_path / "reports"
    write_tree_atomic({"index.html": b"x", "results.csv": b"a\n"}, d)
    if added.endswith("/"):
        (d / added).mkdir()
    else:
        (d / added).write_text("precious")
    with pytest.raises(ProblemError, match=rf"did not write \({re.escape(added)}\)"):
        check_out_dir(d)
    with pytest.raises(ProblemError):
        write_tree_atomic({"index.html": b"y"}, d)
    assert (d / "index.html").read_bytes() == b"x"


def test_old_marker_without_listing_and_nested_builds_are_accepted(tmp_path):
    d = tmp_path / "reports"
    d.mkdir()
    (d / MARKER).write_text("written by `metaanalysis report`; safe to replace\n")
    (d / "index.html").write_text("x")
    check_out_dir(d)
    write_tree_atomic({"index.html": b"x"}, d / "batch" / "one")   # as `make batch` does
    (d / "batch" / "one" / ".inputs.sha256").write_text("0" * 64)  # the batch stamp
    (d / "batch" / MARKER).write_text("written by `metaanalysis report`; safe to replace\n")
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
