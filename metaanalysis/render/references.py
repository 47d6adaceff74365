"""The reference list of included studies: ``references.ris`` and ``references.bib``.

One entry per publication (rows of one paper share it: same PMID, else DOI, else authors,
journal and year), built from the registry's ``authors``, ``trial_name`` (as the title: the
registry keeps no article title), ``journal``, ``year``, ``pmid`` and ``doi``; a field the
registry leaves empty is left out. Entries are sorted by first author, year and journal, so
the files are byte-identical for identical inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .labels import RowText, short_author

__all__ = ["Reference", "included_references", "references_ris", "references_bib"]


@dataclass(frozen=True)
class Reference:
    """One publication of the registry (fields as text; '' when the registry has none)."""

    authors: tuple[str, ...]
    et_al: bool   # the registry's author list ends in "et al." (BibTeX: "and others")
    title: str
    journal: str
    year: str
    pmid: str
    doi: str

    def sort_key(self) -> tuple:
        return (self.authors[0].lower() if self.authors else "", self.year, self.journal, self.pmid, self.doi)


def _authors(text: str) -> tuple[str, ...]:
    """"Gnant M, Pfeiler G et al." -> ("Gnant M", "Pfeiler G"); "et al." is dropped (the list is
    then incomplete, which RIS and BibTeX cannot say except by "and others")."""
    names = [re.sub(r"\s+et al\.?$", "", a.strip()).strip() for a in text.split(",")]
    return tuple(n for n in names if n)


def included_references(row_ids, rows: RowText) -> list[Reference]:
    """The distinct publications of ``row_ids`` (registry rows), sorted."""
    seen: dict[tuple, Reference] = {}
    for rid in row_ids:
        authors = rows.get(rid, "authors")
        ref = Reference(_authors(authors), bool(re.search(r"\bet al\.?$", authors.strip())), rows.get(rid, "trial_name"), rows.get(rid, "journal"),
                        str(rows.integer(rid, "year") or ""), rows.get(rid, "pmid"), rows.get(rid, "doi"))
        key = (("pmid", ref.pmid) if ref.pmid else ("doi", ref.doi.lower()) if ref.doi
               else ("text", ref.authors, ref.journal, ref.year))
        seen.setdefault(key, ref)
    return sorted(seen.values(), key=Reference.sort_key)


def _one_line(s: str) -> str:
    return " ".join(s.split())


def references_ris(refs: list[Reference]) -> bytes:
    """RIS records (``TY  - JOUR`` ... ``ER  -``), one per reference; PMID as ``AN``."""
    out = []
    for r in refs:
        lines = ["TY  - JOUR"] + [f"AU  - {_one_line(a)}" for a in r.authors]
        for tag, value in (("TI", r.title), ("JO", r.journal), ("PY", r.year), ("AN", r.pmid), ("DO", r.doi)):
            if value:
                lines.append(f"{tag}  - {_one_line(value)}")
        out.append("\n".join(lines + ["ER  - ", ""]))
    return "\n".join(out).encode("utf-8")


_BIB_SPECIAL = re.compile(r"([\\{}&%$#_~^])")


def _bib(s: str) -> str:
    """Text safe inside a BibTeX ``{...}`` value (specials escaped, one line)."""
    def esc(m):
        c = m.group(1)
        return {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}.get(c, "\\" + c)
    return _BIB_SPECIAL.sub(esc, _one_line(s))


def _bib_keys(refs: list[Reference]) -> list[str]:
    """``gnant2015``, ``gnant2015b``, ...: first author's surname (ASCII letters) and year."""
    keys, used = [], {}
    for r in refs:
        base = re.sub(r"[^a-z]", "", short_author(r.authors[0]).lower()) if r.authors else ""
        base = (base or "ref") + r.year
        n = used.get(base, 0)
        used[base] = n + 1
        keys.append(base + ("" if n == 0 else chr(ord("a") + n)))
    return keys


def references_bib(refs: list[Reference]) -> bytes:
    """BibTeX ``@article`` entries, one per reference (authors joined by ``and``)."""
    out = []
    for r, key in zip(refs, _bib_keys(refs)):
        fields = [("author", " and ".join([_bib(a) for a in r.authors] + (["others"] if r.et_al else []))), ("title", _bib(r.title)),
                  ("journal", _bib(r.journal)), ("year", _bib(r.year)), ("pmid", _bib(r.pmid)),
                  ("doi", _bib(r.doi))]
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields if value)
        out.append(f"@article{{{key},\n{body}\n}}\n")
    return "\n".join(out).encode("utf-8")
