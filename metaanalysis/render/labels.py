"""Names of registry rows as a reader sees them: "ABCSG-18 (Gnant 2015)".

:class:`RowText` wraps the registry's rows for the renderers: cell text, study labels, labels
that tell two reports of one trial apart, and the provenance record of a row.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..cells import integer, number, text as cell

__all__ = ["RowText", "short_author", "short_design", "label_author", "label_trial"]

# Words that make an author cell a group or an organisation rather than a person.
_GROUP_RE = re.compile(r"\b(group|investigators?|collaborat\w*|consortium|committee|trialists|network|"
                       r"sponsor|inc|ltd|gmbh)\b", re.IGNORECASE)
_DESIGN_TEXT = {"RCT post hoc subgroup": "RCT, post hoc subgroup",
                "RCT prespecified subgroup": "RCT, prespecified subgroup"}


def short_author(authors: str) -> str:
    """First author's surname: "Gnant M, Pfeiler G, ..." -> "Gnant"; multi-word surnames kept."""
    a = authors.split(",")[0].strip()
    a = re.sub(r"\s+et al\.?$", "", a).strip()
    parts = a.split()
    if len(parts) > 1 and len(parts[-1]) <= 3 and parts[-1].replace(".", "").isupper():
        parts = parts[:-1]
    return " ".join(parts) or authors


def label_author(authors: str, trial: str) -> str:
    """The author part of a study label: the first author's surname ("Smith MR et al." -> "Smith"),
    or a group author without a parenthesis ("Children's Oncology Group (AOST1321 investigators)"
    -> "Children's Oncology Group", "Amgen (sponsor)" -> "Amgen"); '' when the group's name only
    repeats the trial ("D-BEYOND investigators" for D-BEYOND), so the label does not say it twice.
    """
    plain = re.sub(r"\s*\([^)]*\)", "", authors).strip() or authors.strip()
    if _GROUP_RE.search(plain) or plain != authors.strip():
        folded, t = plain.casefold(), trial.casefold()
        if t and t in folded and not _GROUP_RE.sub("", folded.replace(t, "")).strip(" ,;-"):
            return ""
        return plain
    return short_author(authors)


def label_trial(trial_id: str, endpoints) -> str:
    """The trial part of a study label: ``trial_id`` without a trailing endpoint code that would
    name another endpoint on every page ("nmCRPC-BMFS" -> "nmCRPC" when BMFS is an endpoint code)."""
    m = re.match(r"^(?P<base>.+?)[-_ ](?P<code>[A-Za-z]+)$", trial_id)
    return m.group("base") if m and m.group("code") in endpoints else trial_id


def short_design(design: str) -> str:
    """A registry design value as table text."""
    return _DESIGN_TEXT.get(design, design)


class RowText:
    """Registry rows by ``row_id``, as text for the renderers."""

    def __init__(self, registry, rob=None):
        self.rows = {cell(r["row_id"]): r for r in registry.df.to_dict("records")}
        self.rob = rob  # metaanalysis.rob.RobTable: the RoB 2 overall judgement shown in provenance
        self.endpoints = frozenset(cell(r.get("endpoint")) for r in self.rows.values()) - {""}

    def get(self, rid: str, column: str) -> str:
        return cell(self.rows[rid].get(column))

    def number(self, rid: str, column: str) -> float | None:
        return number(self.rows[rid].get(column))

    def integer(self, rid: str, column: str) -> int | None:
        return integer(self.rows[rid].get(column))

    def label(self, rid: str, detail: str = "") -> str:
        """``TRIAL [detail] (Author Year)``: :func:`label_trial` and :func:`label_author`, so no
        endpoint suffix and no group name that repeats the trial ("D-BEYOND (2017)")."""
        year = self.integer(rid, "year")
        trial = self.get(rid, "trial_id")
        who = label_author(self.get(rid, "authors"), trial)
        base = " ".join(x for x in (label_trial(trial, self.endpoints), detail) if x)
        paren = " ".join(str(x) for x in (who, year) if x)
        return f"{base} ({paren})" if paren else base

    def report_labels(self, a: str, b: str) -> tuple[str, str]:
        """Labels of two reports of one trial that tell them apart (sensitivity swaps).

        ``ABCSG-18 final analysis (Gnant 2022)`` vs ``ABCSG-18 primary DFS analysis (Gnant 2019)``:
        the registry's ``report`` column without its trailing year; where both rows name the same
        report, the part of ``endpoint_detail`` in which they differ; as a last resort the row id.
        """
        da, db = self._report(a), self._report(b)
        if da == db:
            xa, xb = _differing_tails(self._detail(a), self._detail(b))
            da, db = ", ".join(x for x in (da, xa) if x), ", ".join(x for x in (db, xb) if x)
        if da == db:
            da, db = f"{da} {a}".strip(), f"{db} {b}".strip()
        return self.label(a, da), self.label(b, db)

    def _report(self, rid: str) -> str:
        return re.sub(r"[\s,;]*\b(19|20)\d\d$", "", self.get(rid, "report").strip())

    def _detail(self, rid: str) -> str:
        return re.sub(r"\s*\([^)]*\)", "", self.get(rid, "endpoint_detail")).strip()

    def rob_overall(self, rid: str) -> str:
        """The RoB 2 overall judgement of the row's result from ``trials/rob.csv`` ("not assessed"
        when the file does not judge it)."""
        from ..rob import RobTable

        return (self.rob or RobTable()).entry(rid).overall.value

    def publication(self, rid: str) -> dict[str, Any]:
        """Who published the row where, with PubMed and doi.org links."""
        pmid, doi = self.get(rid, "pmid"), self.get(rid, "doi")
        return {
            "row_id": rid, "authors": self.get(rid, "authors"), "trial_name": self.get(rid, "trial_name"),
            "journal": self.get(rid, "journal"), "year": self.integer(rid, "year") or "",
            "pmid": pmid, "pmid_url": f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid else "",
            "doi": doi, "doi_url": f"https://doi.org/{doi}" if doi else "",
            "source_location": self.get(rid, "source_location"), "status": self.get(rid, "status"),
            "rob": self.rob_overall(rid), "population": self.get(rid, "population"),
            "notes": self.get(rid, "notes"), "line": int(self.rows[rid].get("source_line") or 0),
        }


def _differing_tails(ta: str, tb: str) -> tuple[str, str]:
    """The parts of two texts after their common prefix, cut at a word boundary."""
    n = len(os.path.commonprefix([ta, tb]))
    if (ta + " ")[n] not in " ,;" or (tb + " ")[n] not in " ,;":
        n = max(ta.rfind(" ", 0, n), 0)  # they differ inside a word: keep whole words
    return ta[n:].strip(" ,;"), tb[n:].strip(" ,;")
