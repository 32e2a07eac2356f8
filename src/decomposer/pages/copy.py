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

from decomposer.catalog.score import LABELS, SUBSCORES
from decomposer.pages.model import MISSING, ToolSide

TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class Lead:
    name: str
    mine: int
    theirs: int


def verdict_facts(a: ToolSide, b: ToolSide) -> dict[str, Any]:
    """The structured facts the copy templates may state; all derived from the table's numbers."""
    if a.rank == b.rank:
        first, second, leader = a, b, None
    elif a.rank > b.rank:
        first, second, leader = a, b, a.slug
    else:
        first, second, leader = b, a, b.slug
    first_leads = [
        Lead(LABELS[n], first.subscores[n], second.subscores[n])
        for n in SUBSCORES
        if first.subscores[n] > second.subscores[n]
    ]
    second_leads = [
        Lead(LABELS[n], second.subscores[n], first.subscores[n])
        for n in SUBSCORES
        if second.subscores[n] > first.subscores[n]
    ]
    ties = [
        Lead(LABELS[n], a.subscores[n], b.subscores[n])
        for n in SUBSCORES
        if a.subscores[n] == b.subscores[n]
    ]
    return {
        "a": a,
        "b": b,
        "first": first,
        "second": second,
        "leader": leader,
        "tie": leader is None,
        "first_leads": first_leads,
        "second_leads": second_leads,
        "ties": ties,
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
