"""Comparison copy: summary, basis, verdict and search text rendered from facts in the table.

The Jinja2 text templates in ``templates/copy/`` are fed only ``verdict_facts``, numbers that are
in the table, so the copy cannot contradict it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from decomposer.catalog.score import LABELS, SUBSCORES, out_of
from decomposer.pages.model import MISSING, ToolSide

TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class Lead:
    name: str
    mine: int
    theirs: int


def ranks_comparable(a: ToolSide, b: ToolSide) -> bool:
    """Two Ranks may be compared only when both are known and rest on the same sub-scores."""
    if a.rank is None or b.rank is None:
        return False
    return all((a.subscores[n] is None) == (b.subscores[n] is None) for n in SUBSCORES)


def _leads(first: ToolSide, second: ToolSide) -> list[Lead]:
    out = []
    for n in SUBSCORES:
        mine, theirs = first.subscores[n], second.subscores[n]
        if mine is not None and theirs is not None and mine > theirs:
            out.append(Lead(LABELS[n], mine, theirs))
    return out


def verdict_facts(a: ToolSide, b: ToolSide) -> dict[str, Any]:
    """The structured facts the copy templates may state; all derived from the table's numbers.

    Unknown is not zero: a sub-score missing on either side is listed in ``unknown`` and never in
    leads or ties; when the Ranks cannot be compared (``ranked`` false) nobody leads or ties.
    """
    ranked = ranks_comparable(a, b)
    if not ranked or a.rank == b.rank:
        first, second, leader = a, b, None
    elif (a.rank or 0) > (b.rank or 0):
        first, second, leader = a, b, a.slug
    else:
        first, second, leader = b, a, b.slug
    ties = [
        Lead(LABELS[n], va, va)
        for n in SUBSCORES
        if (va := a.subscores[n]) is not None and va == b.subscores[n]
    ]
    unknown = [LABELS[n] for n in SUBSCORES if a.subscores[n] is None or b.subscores[n] is None]
    return {
        "a": a,
        "b": b,
        "first": first,
        "second": second,
        "leader": leader,
        "ranked": ranked,
        "tie": ranked and leader is None,
        "first_leads": _leads(first, second),
        "second_leads": _leads(second, first),
        "ties": ties,
        "unknown": unknown,
        "free_tier": [s for s in (first, second) if s.free_tier is True],
        "no_free_tier": [s for s in (first, second) if s.free_tier is False],
        "priced": [s for s in (first, second) if s.price_text != MISSING],
    }


class Copywriter:
    """Renders summary, basis and verdict from ``templates/copy/*.txt.j2`` (plain text)."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates / "copy"),
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
        )
        self.env.filters["scorelist"] = _scorelist
        self.env.filters["andlist"] = _andlist
        self.env.filters["out_of"] = out_of
        self.summary = self.env.get_template("summary.txt.j2")
        self.basis = self.env.get_template("basis.txt.j2")
        self.verdict = self.env.get_template("verdict.txt.j2")
        self.search = self.env.get_template("search.txt.j2")

    @staticmethod
    def clean(text: str) -> str:
        """Rendered copy as one line: templates wrap freely, pages show single-spaced text."""
        return " ".join(text.split())


def _andlist(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _scorelist(leads: Sequence[Lead]) -> str:
    return _andlist([f"{lead.name} ({lead.mine} vs {lead.theirs})" for lead in leads])
