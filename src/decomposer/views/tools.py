"""The tool-detail read model, built once for `decomposer tool show`, the tool page and its API.

``tool_detail`` reads everything said about one tool; ``ToolDetail.show`` and
``ToolDetail.page`` are the two published shapes (``tool show --json`` and
``GET /api/tools/{slug}``), which name some facts differently and must keep doing so.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.catalog.catalogue import effective_profile, load_facts
from decomposer.catalog.score import Weights, score_tool
from decomposer.catalog.snapshot import load_snapshot
from decomposer.core.errors import DecomposerError
from decomposer.core.vocab import ToolType
from decomposer.pages.model import ScoresView, SourcedView
from decomposer.review.queries import counts
from decomposer.store.catalogue_models import CatalogueEntry
from decomposer.store.models import Tool
from decomposer.store.tools import get_tool

SHOWN_STATUSES = ("approved", "proposed", "ungrounded", "rejected")
"""The capability counts ``tool show`` prints, in its order."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CatalogueInfo(_Frozen):
    """The tool's catalogue entry: declared categories and score signals, and where from."""

    categories: list[str]
    signals: dict[str, Any]
    source: str
    imported_at: str
    revision: int


class ToolShow(_Frozen):
    """``decomposer tool show --json``."""

    slug: str
    name: str
    vendor: str | None
    type: ToolType | None
    homepage: str | None
    catalogue: CatalogueInfo | None
    profile: dict[str, SourcedView | None]
    capabilities: dict[str, int]


class ToolPage(_Frozen):
    """``GET /api/tools/{slug}`` and the tool page: counts, profile, scores, a tool to compare."""

    slug: str
    name: str
    type: ToolType | None
    vendor: str | None
    homepage: str | None
    counts: dict[str, int]
    profile: dict[str, SourcedView | None]
    scores: ScoresView | None
    score_error: str | None
    others: list[str]
    vs: str | None


class ToolDetail(_Frozen):
    """Everything read about one tool; ``scores`` only when asked for (``as_of``)."""

    slug: str
    name: str
    type: ToolType | None
    vendor: str | None
    homepage: str | None
    catalogue: CatalogueInfo | None
    profile: dict[str, SourcedView | None]
    counts: dict[str, int]
    """Capabilities per status plus ``pending`` and ``changed``; empty when it has none."""
    scores: ScoresView | None
    score_error: str | None
    others: list[str]

    def show(self) -> ToolShow:
        return ToolShow(
            slug=self.slug,
            name=self.name,
            vendor=self.vendor,
            type=self.type,
            homepage=self.homepage,
            catalogue=self.catalogue,
            profile=self.profile,
            capabilities={s: self.counts.get(s, 0) for s in SHOWN_STATUSES},
        )

    def page(self, vs: str | None = None) -> ToolPage:
        """``vs`` is kept when it names another tool, else the first other tool is offered."""
        return ToolPage(
            slug=self.slug,
            name=self.name,
            type=self.type,
            vendor=self.vendor,
            homepage=self.homepage,
            counts=self.counts,
            profile=self.profile,
            scores=self.scores,
            score_error=self.score_error,
            others=self.others,
            vs=vs if vs in self.others else (self.others[0] if self.others else None),
        )


def tool_detail(session: Session, slug: str, as_of: date | None = None) -> ToolDetail:
    tool = get_tool(session, slug)
    entry = session.get(CatalogueEntry, tool.id)
    profile = effective_profile(tool.type, entry, load_facts(session, [tool.id]).get(tool.id, []))
    scores, score_error = _scores(session, slug, as_of) if as_of else (None, None)
    return ToolDetail(
        slug=tool.slug,
        name=tool.name,
        type=tool.type,
        vendor=tool.vendor,
        homepage=tool.homepage,
        catalogue=None
        if entry is None
        else CatalogueInfo(
            categories=entry.categories,
            signals=entry.signals,
            source=entry.source,
            imported_at=entry.imported_at.isoformat(),
            revision=entry.revision,
        ),
        profile={k: SourcedView.of(v) for k, v in profile.items()},
        counts=counts(session).get(tool.slug, {}),
        scores=scores,
        score_error=score_error,
        others=[s for s in session.scalars(select(Tool.slug).order_by(Tool.slug)) if s != slug],
    )


def _scores(session: Session, slug: str, as_of: date) -> tuple[ScoresView | None, str | None]:
    """The default-weight score card, or why there is none (shown on the page, not raised)."""
    try:
        snap = load_snapshot(session, [slug])
        card = score_tool(snap.tools[slug].inputs(), snap.context, Weights(), as_of)
    except DecomposerError as exc:
        return None, str(exc)
    return ScoresView.of(card), None
