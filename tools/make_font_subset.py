"""Make the plot font that ships in the package: a DejaVu Sans subset and its metrics.

Run at development time, never at build or report time (fontTools is not a runtime dependency;
it comes with the ``test`` extra)::

    python tools/make_font_subset.py          # rewrites metaanalysis/plots/fonts/
    python tools/make_font_subset.py --check  # exit 1 if the committed files are out of date

Writes, from matplotlib's own copy of DejaVu Sans (the font every plot layout is measured in):

* ``DejaVuSans-subset.woff`` and ``DejaVuSans-Bold-subset.woff``: the glyphs plot text can use
  (:data:`SUBSET_RANGES`: Latin-1, Latin Extended-A, Greek, combining accents, dashes, quotes,
  daggers, arrows, super/subscripts, ≤ ≥ − × ∞ ...), unhinted, WOFF 1.0 (zlib; WOFF2 would need
  brotli), with kerning and mark positioning kept. The report embeds them once per page.
* ``dejavu-metrics.json``: per face the advance width (font units) of *every* character the
  full font maps, the pair kerning of the characters it maps, the line-box metrics used to place
  a baseline, and the units per em. :mod:`metaanalysis.plots._text` measures text with it, so a
  layout needs neither matplotlib nor fontTools.

The metrics are checked against the measurement the layout used before (matplotlib's
``TextToPath``: FreeType advances shaped by HarfBuzz, 26.6 fixed point at 100 pt): every
subset character alone and every pair of subset characters must give the same width, else the
script fails. Outputs are byte-identical run to run (no timestamps).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "metaanalysis" / "plots" / "fonts"
FACES = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf"}
SUBSET_NAMES = {"regular": "DejaVuSans-subset.woff", "bold": "DejaVuSans-Bold-subset.woff"}
METRICS = "dejavu-metrics.json"

#: Inclusive code point ranges of the shipped subset (characters the font lacks are skipped).
SUBSET_RANGES = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x00FF),  # Latin-1 Supplement: ², ×, §, ±, µ, accented letters
    (0x0100, 0x017F),  # Latin Extended-A (author names: Ł, ő, ş, ...)
    (0x0300, 0x036F),  # combining accents (decomposed names)
    (0x0370, 0x03FF),  # Greek: τ, χ, β, I²'s friends
    (0x2010, 0x2027),  # dashes, quotes, dagger †, double dagger ‡, bullet, ellipsis
    (0x2030, 0x203A),  # per mille, primes, angle quotes
    (0x2070, 0x209F),  # superscripts and subscripts
    (0x2190, 0x2199),  # arrows (favours labels)
    (0x2116, 0x2116), (0x2122, 0x2122),
    (0x2202, 0x2202), (0x2206, 0x2206), (0x2211, 0x2215), (0x221A, 0x221A),
    (0x221E, 0x221E), (0x2248, 0x2248), (0x2260, 0x2265),  # ∂ ∆ ∑ − ∓ ∕ √ ∞ ≈ ≠ ≡ ≤ ≥
    (0xFB00, 0xFB06),  # ligatures ﬀ ﬁ ﬂ ﬃ ﬄ (what 'liga' makes of ff, fi, fl, ffi, ffl)
    (0x25CC, 0x25CC),  # dotted circle: what a shaper draws under a lone combining mark
    (0xFFFD, 0xFFFD),
)


def _font_path(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


def subset_codepoints(cmap: dict[int, str]) -> list[int]:
    return sorted(c for lo, hi in SUBSET_RANGES for c in range(lo, hi + 1) if c in cmap)


def make_subset(face: str) -> bytes:
    """WOFF bytes of the subset of one face (deterministic: no timestamp recalculation)."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(_font_path(FACES[face]), recalcTimestamp=False)
    opts = subset.Options()
    opts.hinting = False            # the browser draws with geometricPrecision, unhinted
    # copyright, family, style, ids, version, licence text and URL (the Bitstream Vera / DejaVu
    # licence asks every copy to carry its notices)
    opts.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]
    opts.notdef_outline = True
    opts.flavor = "woff"
    opts.with_zopfli = False
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=subset_codepoints(font.getBestCmap()))
    sub.subset(font)
    buf = io.BytesIO()
    font.flavor = "woff"
    font.save(buf, reorderTables=True)
    return buf.getvalue()


def _kerning(font, cmap: dict[int, str]) -> list[list[int]]:
    """[[left code point, right code point, value in font units], ...] from the 'kern' table,
    for characters of the subset (sorted)."""
    table = font["kern"].kernTables[0].kernTable
    sub = subset_codepoints(cmap)
    by_glyph: dict[str, list[int]] = {}
    for c in sub:
        by_glyph.setdefault(cmap[c], []).append(c)
    out = [[a, b, v] for (ga, gb), v in table.items() if v
           for a in by_glyph.get(ga, ()) for b in by_glyph.get(gb, ())]
    return sorted(out)


def _ligatures(font, cmap: dict[int, str]) -> list[list]:
    """[[component code points], ligature code point] of the 'liga' feature, for ligatures of
    subset characters whose glyph the font also maps to a code point (ﬀ ﬁ ﬂ ﬃ ﬄ), longest
    first as a shaper tries them."""
    gsub = font["GSUB"].table
    cp_of: dict[str, int] = {}
    for c in sorted(cmap, reverse=True):  # the lowest code point of a glyph wins
        cp_of[cmap[c]] = c
    sub = set(subset_codepoints(cmap))
    out = []
    for rec in gsub.FeatureList.FeatureRecord:
        if rec.FeatureTag != "liga":
            continue
        for index in rec.Feature.LookupListIndex:
            lookup = gsub.LookupList.Lookup[index]
            for table in lookup.SubTable:
                table = table.ExtSubTable if lookup.LookupType == 7 else table
                for first, ligs in getattr(table, "ligatures", {}).items():
                    for lig in ligs:
                        seq = [cp_of.get(g) for g in [first, *lig.Component]]
                        if all(c in sub for c in seq) and cp_of.get(lig.LigGlyph) in sub:
                            out.append([seq, cp_of[lig.LigGlyph]])
    return sorted({(tuple(a), b) for a, b in out}, key=lambda x: (-len(x[0]), x))


def face_metrics(face: str) -> dict:
    """Advances (every mapped character, as runs of consecutive code points), kerning and the
    vertical metrics of one face."""
    from fontTools.ttLib import TTFont

    font = TTFont(_font_path(FACES[face]))
    cmap = font.getBestCmap()
    hmtx = font["hmtx"].metrics
    runs: list[list] = []
    for c in sorted(cmap):
        adv = hmtx[cmap[c]][0]
        if runs and runs[-1][0] + len(runs[-1][1]) == c:
            runs[-1][1].append(adv)
        else:
            runs.append([c, [adv]])
    glyf = font["glyf"]
    ascent_l = glyf[cmap[ord("l")]].yMax  # matplotlib's "center_baseline": half of 'l' above it
    return {"units_per_em": font["head"].unitsPerEm, "advance_runs": runs,
            "notdef_advance": hmtx[".notdef"][0], "kerning": _kerning(font, cmap),
            "ligatures": [[list(a), b] for a, b in _ligatures(font, cmap)],
            "ascent_l": ascent_l, "subset": subset_codepoints(cmap)}


def metrics_json() -> bytes:
    import matplotlib

    data = {"source": f"DejaVu Sans {_version()} from matplotlib {matplotlib.__version__}",
            "faces": {face: face_metrics(face) for face in FACES}}
    return (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")


def _version() -> str:
    from fontTools.ttLib import TTFont

    return TTFont(_font_path(FACES["regular"]))["name"].getDebugName(5) or "?"


#: Strings where ligatures meet kerning and each other (beyond the pairs).
_LIGATURE_PROBES = ["ffi", "ffl", "fff", "ffff", "fffi", "Office", "Effect", "differences", "affl",
                    "fi.", "Tfi", "ff,", "fj", "Wfl", "f\u00ad", "e\u0301f"]


def check_against_matplotlib(metrics: dict) -> int:
    """Width of every subset character and every ordered pair of them, from the metrics (as
    :func:`metaanalysis.plots._text.text_width` computes it) and from matplotlib's TextToPath:
    returns the number of strings that differ by more than 1e-9 pt."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    sys.path.insert(0, str(ROOT))
    from metaanalysis.plots._text import FaceMetrics

    t2p = TextToPath()
    bad = 0
    for face, m in metrics["faces"].items():
        fm = FaceMetrics.from_json(m)
        prop = FontProperties(family="DejaVu Sans", size=100.0, weight="bold" if face == "bold" else "normal")
        chars = [chr(c) for c in m["subset"] if not 0x300 <= c <= 0x36F and c != 0xAD]
        strings = chars + [a + b for a in chars for b in chars] + _LIGATURE_PROBES
        for s in strings:
            old = t2p.get_text_width_height_descent(s, prop, ismath=False)[0]
            new = fm.width_at(s, 100.0)
            if abs(old - new) > 1e-9:
                bad += 1
                if bad <= 20:
                    print(f"{face}: {s!r} matplotlib {old!r}, metrics {new!r}", file=sys.stderr)
        print(f"{face}: {len(strings)} strings checked", file=sys.stderr)
    return bad


def outputs() -> dict[str, bytes]:
    files = {SUBSET_NAMES[face]: make_subset(face) for face in FACES}
    files[METRICS] = metrics_json()
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files only")
    ap.add_argument("--no-verify", action="store_true", help="skip the check against matplotlib")
    args = ap.parse_args(argv)
    files = outputs()
    if args.check:
        stale = [n for n, b in files.items() if not (OUT / n).is_file() or (OUT / n).read_bytes() != b]
        print("out of date: " + ", ".join(stale) if stale else "up to date", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"wrote {OUT / name} ({len(data):,} bytes)", file=sys.stderr)
    if not args.no_verify:
        bad = check_against_matplotlib(json.loads(files[METRICS]))
        if bad:
            print(f"{bad} strings measure differently from matplotlib", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
