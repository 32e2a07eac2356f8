"""The page model: frozen pydantic view models of one "A vs B" comparison, as pages show it.

``Comparison.model_dump_json`` is the ``--format json`` page and the JSON API's comparison
response, so these field names are a published schema (``SCHEMA_VERSION``).
"""

from __future__ import annotations

import datetime as dt
from datetime import date
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from decomposer.catalog.catalogue import STALE_AFTER_DAYS, Sourced
from decomposer.catalog.score import ScoreCard, Weights
from decomposer.core.vocab import CAPABILITIES_PER_SIDE, Provenance

SCHEMA_VERSION = 1
MISSING = "—"
MODEL_MARK = "✎ model-written"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ScorePart(_Model):
    label: str
    value: str
    computation: str
    score: float


class SubScoreView(_Model):
    """``value`` is null when the inputs are missing; ``how`` then gives the reason."""

    value: int | None
    exact: float | None
    how: str
    parts: list[ScorePart]


class ScoresView(_Model):
    """A default-weight score card (``ScoreCard.as_json``): Rank and the five sub-scores."""

    rank: int | None
    rank_how: str
    coverage: int = 100
    adoption: SubScoreView
    quality: SubScoreView
    ecosystem: SubScoreView
    match_graph: SubScoreView
    freshness: SubScoreView

    @classmethod
    def of(cls, card: ScoreCard) -> ScoresView:
        return cls.model_validate(card.as_json())


class SourcedView(_Model):
    """A profile value and where it came from (catalogue, tool registry or docs quote)."""

    value: Any
    source: str
    quote: str | None
    origin: str | None = None
    checked_on: date | None = None

    @classmethod
    def of(cls, item: Sourced | None) -> SourcedView | None:
        return None if item is None else cls.model_validate(item.as_json())


class EvidenceView(_Model):
    quote: str
    document: str | None
    source: str | None
    grounded: bool
    fetched_on: date | None = None
    """When the document's current content was fetched; None when unknown."""
    stale: bool = False
    """Fetched longer ago than ``Options.stale_after_days`` (or undated)."""


class SourceNote(_Model):
    """Where a group of a tool's price values comes from and when it was last checked."""

    fields: list[str]
    source: str
    checked_on: date | None
    stale: bool


class TextProvenance(_Model):
    """Where one published text field comes from. Model-written text (``contrast``) also names
    the model, the prompt version, the date it was written and whether it passed the checker;
    the JSON leaves out what does not apply."""

    source: Provenance
    model: str | None = None
    prompt_version: str | None = None
    date: dt.date | None = None
    checked: bool | None = None
    citations: list[int] | None = None
    """Evidence row ids a contrast line relies on (quotes of both tools)."""
    draft: bool | None = None
    """Not approved by a reviewer yet (shown only on draft previews)."""

    @property
    def model_written(self) -> bool:
        return self.source == Provenance.CONTRAST

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


DOCS = TextProvenance(source=Provenance.DOCS)
EDITOR = TextProvenance(source=Provenance.EDITOR)
TEMPLATE = TextProvenance(source=Provenance.TEMPLATE)
CAPABILITY_TEXT = ("description", "unique", "vs_alternatives")
"""The text fields of a capability that carry a provenance on pages."""


class CapabilityView(_Model):
    id: str
    name: str
    category: str
    status: str
    draft: bool
    grounded: bool
    description: str
    unique: str
    vs_alternatives: str
    evidence: list[EvidenceView]
    provenance: dict[str, TextProvenance] = Field(
        default_factory=lambda: dict.fromkeys(CAPABILITY_TEXT, DOCS)
    )
    """Per text field (``CAPABILITY_TEXT``): ``docs``, ``editor`` or ``contrast``."""

    @property
    def model_written(self) -> TextProvenance | None:
        """The vs-alternatives line's provenance when a model wrote it from both tools' evidence."""
        found = self.provenance.get("vs_alternatives")
        return found if found is not None and found.model_written else None


class ToolSide(_Model):
    slug: str
    name: str
    vendor: str | None
    homepage: str | None
    categories: list[str]
    profile: dict[str, SourcedView | None]
    type_text: str
    pricing_text: str
    price_text: str
    free_tier: bool | None
    rank: int | None
    rank_coverage: int = 100
    """Percent of the total weight carried by the known sub-scores Rank is computed from."""
    subscores: dict[str, int | None]
    """None (JSON null) where the inputs are missing: shown as "—", never compared."""
    scores: dict[str, Any]
    """``ScoreCard.as_json``: the same shape as ``ScoresView``, kept loose for hand-built sides."""
    capabilities_count: int
    approved_count: int
    draft_count: int
    grounded_count: int
    times_matched: int
    capabilities: list[CapabilityView]
    shown: int
    more: int
    sources: list[SourceNote] = Field(default_factory=list)
    """Provenance of Pricing, Starting Price and free tier, with their "checked on" dates."""


class Row(_Model):
    name: str
    a: str
    b: str


class CapRef(_Model):
    id: str
    name: str
    draft: bool


class SharedView(_Model):
    """One row of "Shared capabilities": the same capability in both tools."""

    a: CapRef
    b: CapRef
    similarity: float


class AlignmentInfo(_Model):
    method: str = "optimal one-to-one assignment (Hungarian) on cosine similarity"
    model: str
    threshold: float


class Verdict(_Model):
    leader: str | None
    leads: dict[str, list[str]]
    ties: list[str]
    not_enough_data: list[str] = Field(default_factory=list)
    """Sub-scores unknown on either side: no lead or tie is claimed on them."""
    text: str


class CopyInfo(_Model):
    """Which copy was asked for (``--copy``) and, when model-written copy was refused by the
    checker, the note the page shows instead of it."""

    requested: str = "template"
    fallback_note: str | None = None


class Options(_Model):
    """Page-wide settings. ``as_of`` is kept as the first day of its month (see score.py)."""

    top_k: int = Field(default=CAPABILITIES_PER_SIDE, ge=1)
    include_unreviewed: bool = False
    weights: dict[str, float] = Field(default_factory=lambda: Weights().as_dict())
    as_of: date
    stale_after_days: int = Field(default=STALE_AFTER_DAYS, ge=0)
    """Values and documents checked longer ago than this (before ``as_of``) are flagged."""

    @field_validator("as_of")
    @classmethod
    def _month(cls, value: date) -> date:
        return value.replace(day=1)

    @property
    def as_of_text(self) -> str:
        return self.as_of.strftime("%B %Y")


class Comparison(_Model):
    kind: str = "decomposer.comparison"
    schema_version: int = SCHEMA_VERSION
    title: str
    options: Options
    a: ToolSide
    b: ToolSide
    rows: list[Row]
    shared: list[SharedView]
    only_in_a: list[CapRef]
    only_in_b: list[CapRef]
    alignment: AlignmentInfo
    summary: str
    basis: str
    verdict: Verdict
    score_note: str
    search_text: str
    provenance: dict[str, TextProvenance] = Field(
        default_factory=lambda: {"summary": TEMPLATE, "verdict": TEMPLATE}
    )
    """Of ``summary`` and ``verdict.text``: ``template``, or ``contrast`` (model-written)."""
    copy_info: CopyInfo = Field(default_factory=CopyInfo)

    @property
    def disclosure(self) -> str | None:
        """The note under a page with model-written text: who wrote it, when, and how it was
        checked; ``None`` when every text field came from docs, an editor or a template."""
        written = self.model_written()
        if not written:
            return None
        models = sorted({f"{p.model} (prompt {p.prompt_version})" for p in written})
        dates = sorted({str(p.date) for p in written if p.date is not None})
        when = f" on {', '.join(dates)}" if dates else ""
        return (
            f"Text marked {MODEL_MARK} was written by {', '.join(models)}{when} and checked "
            "against the cited evidence and the table before publishing; text the checker "
            "could not confirm was not published."
        )

    def model_written(self) -> list[TextProvenance]:
        """Every model-written text field on the page (summary, verdict, capability fields)."""
        found = [p for p in self.provenance.values() if p.model_written]
        for side in (self.a, self.b):
            for cap in side.capabilities[: side.shown]:
                found.extend(p for p in cap.provenance.values() if p.model_written)
        return found
