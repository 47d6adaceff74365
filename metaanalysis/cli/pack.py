"""``metaanalysis pack``: the panel pack, one PDF of a report's overview and every page.

The pages of a built report (``--reports``) are put in one HTML document
(:func:`metaanalysis.render.pack.pack_html`) and printed to PDF by headless Chromium
(``--print-to-pdf``) with the reports' print stylesheet: A4, each page of the report on new
sheets, plots scaled to the page width, wide tables wrapped instead of cut. ``--html`` also keeps
the document (open it in any browser and print it to get the same pack).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..problems import Problem, ProblemError

#: Chromium, where Debian installs it (``make test`` installs it for the browser test).
DEFAULT_CHROMIUM = "/usr/bin/chromium"
_TIMEOUT_S = 180


def _read_pages(reports: Path) -> tuple[str, dict[str, str]]:
    from ..render.pack import page_order

    index = reports / "index.html"
    if not index.is_file():
        raise ProblemError([Problem(str(index), 0, 0, "error", "no report here (index.html is missing)",
                                    "build the reports first: make report (or metaanalysis report --out DIR)")])
    text = index.read_text(encoding="utf-8")
    pages = {}
    for pid in page_order(text):
        p = reports / f"{pid}.html"
        if not p.is_file():
            raise ProblemError([Problem(str(p), 0, 0, "error", "a page the overview links to is missing",
                                        "build the reports again (make report)")])
        pages[pid] = p.read_text(encoding="utf-8")
    return text, pages


def chromium_command(chromium: str, html: Path, pdf: Path) -> list[str]:
    """The headless Chromium call that prints ``html`` to ``pdf`` (no header/footer lines)."""
    cmd = [chromium, "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--run-all-compositor-stages-before-draw", "--no-pdf-header-footer",
           f"--print-to-pdf={pdf}", html.resolve().as_uri()]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return cmd


def cli_pack(args) -> int:
    """``metaanalysis pack [--reports DIR] [--out FILE.pdf] [--html FILE.html] [--chromium PATH]``.

    Returns 0 (PDF written), 1 (no report, Chromium missing or failing).
    """
    from ..render.pack import pack_html

    reports, out = Path(args.reports), Path(args.out)
    if out.resolve().parent == reports.resolve() or reports.resolve() in out.resolve().parents:
        raise ProblemError([Problem(str(out), 0, 0, "error", f"--out lies inside the report folder {reports}, which "
                                    "the next build replaces", "write the pack elsewhere, e.g. panel-pack.pdf")])
    index, pages = _read_pages(reports)
    doc = pack_html(index, pages)
    if args.html:
        Path(args.html).write_text(doc, encoding="utf-8")
    chromium = shutil.which(args.chromium) or args.chromium
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        print(f"metaanalysis pack: error: Chromium not found at {args.chromium} (install Debian's chromium, "
              "or give --chromium PATH; or print the --html document from any browser)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="metaanalysis-pack-") as tmp:
        html, pdf = Path(tmp) / "pack.html", Path(tmp) / "pack.pdf"
        html.write_text(doc, encoding="utf-8")
        done = subprocess.run(chromium_command(chromium, html, pdf), capture_output=True, text=True,
                              timeout=_TIMEOUT_S, cwd=tmp)
        if done.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
            print(f"metaanalysis pack: error: Chromium could not print the pack (exit {done.returncode}): "
                  f"{done.stderr.strip()[-400:]}", file=sys.stderr)
            return 1
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(pdf), out)
    print(f"{out}: panel pack of {reports} (overview and {len(pages)} pages)")
    return 0
