"""What scoring consumes besides a golden set: extracted capabilities and the run's cost totals.

These are plain typed records, not store rows, so scoring stays a pure function: the eval
command fills them from the scratch store and the call log; tests build them by hand.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from decomposer.evals.golden import GoldenSet


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExtractedQuote(_Input):
    """One evidence quote; ``start``/``end`` index the stored text of ``document``.

    ``document`` is the source key relative to the tool's root (as in the golden set); a quote
    the grounding check could not place has no span and counts as ungrounded.
    """

    text: str
    document: str | None = None
    start: int | None = None
    end: int | None = None

    @property
    def grounded(self) -> bool:
        return self.document is not None and self.start is not None and self.end is not None


class ExtractedCapability(_Input):
    """One capability record of one tool, as extraction stored it."""

    tool: str
    name: str
    category: str
    description: str
    unique: str = ""
    vs_alternatives: str = ""
    evidence: tuple[ExtractedQuote, ...] = ()


class CostInput(_Input):
    """Totals for the run from the call log; latency is the sum of the calls' latencies."""

    calls: int = Field(ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost_usd: float | None = None
    """None when the model has no known price (local servers, unknown models)."""
    latency_s: float = Field(ge=0.0)


def golden_as_extracted(golden: GoldenSet) -> list[ExtractedCapability]:
    """The golden set written as a perfect extraction would store it: one record per tool and
    capability name (extraction consolidates a capability found on several pages into one),
    facts as the description, must-quotes as grounded evidence.

    Scoring this against the set itself must give recall = precision = 1: a check that the
    labels are distinct enough for the matcher to tell them apart.
    """
    merged: dict[tuple[str, str], ExtractedCapability] = {}
    for tool, document, capability in golden.capabilities():
        quotes = tuple(
            ExtractedQuote(text=q.text, document=document.source, start=q.start, end=q.end)
            for q in capability.quotes
        )
        key = (tool.slug, capability.name.casefold())
        known = merged.get(key)
        if known is None:
            merged[key] = ExtractedCapability(
                tool=tool.slug,
                name=capability.name,
                category=capability.category,
                description=". ".join(capability.facts),
                evidence=quotes,
            )
            continue
        facts = [f for f in capability.facts if f not in known.description]
        description = ". ".join([known.description, *facts]) if facts else known.description
        merged[key] = known.model_copy(
            update={"description": description, "evidence": known.evidence + quotes}
        )
    return list(merged.values())
