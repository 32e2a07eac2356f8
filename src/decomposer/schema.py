"""The structured output the model must return, and the grounding check Instructor re-asks on.

Every field is required (nullable where a fact may be absent) because strict JSON-schema modes
drop fields with defaults from ``required``. The grounding validator runs only when a validation
context carrying the source chunks is given, so stored or cached payloads can be re-read freely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from decomposer.grounding import find_quote

Category = Literal[
    "models",
    "text-generation",
    "structured-output",
    "function-calling",
    "embeddings",
    "code",
    "vision",
    "multimodal",
    "long-context",
    "fine-tuning",
    "batch",
    "safety",
    "deployment",
    "platform",
    "pricing",
    "other",
]
CATEGORIES: tuple[str, ...] = get_args(Category)

PricingModel = Literal["free", "freemium", "paid", "open-weights", "unknown"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Capability(_Strict):
    """One thing the product can do, as stated by its documentation."""

    name: str = Field(description="Short title, 2-6 words, e.g. 'Structured JSON output'.")
    category: Category
    description: str = Field(description="What it does and how, 2-4 sentences, only from the docs.")
    unique: str = Field(description="What is distinctive about it, as the docs support it.")
    vs_alternatives: str = Field(
        description="How it compares with alternatives; say 'Not stated in the docs.' if unknown."
    )
    evidence: list[str] = Field(
        min_length=1,
        description="One or more verbatim quotes (a sentence or clause) copied from the docs.",
    )


class Fact(_Strict):
    """A profile value with the quote that supports it."""

    value: str
    evidence: str = Field(description="Verbatim quote from the docs supporting the value.")


class Price(_Strict):
    amount: float = Field(description="Lowest listed price, e.g. 0.1")
    currency: str = Field(description="ISO code, e.g. USD or EUR")
    unit: str = Field(description="What the amount buys, e.g. '1M input tokens'")
    evidence: str = Field(description="Verbatim quote from the docs with the price.")


class FreeTier(_Strict):
    available: bool
    evidence: str = Field(description="Verbatim quote from the docs about free use.")


class Profile(_Strict):
    """Product facts; null where this part of the docs does not state them."""

    type: Fact | None = Field(description="API, Model, Library, Platform, ...")
    pricing_model: PricingModel | None
    starting_price: Price | None
    free_tier: FreeTier | None


class Extraction(_Strict):
    """Capabilities and profile facts found in one part of a product's documentation."""

    capabilities: list[Capability]
    profile: Profile

    @model_validator(mode="after")
    def _quotes_are_grounded(self, info: ValidationInfo) -> Extraction:
        context = info.context if isinstance(info.context, dict) else None
        if not context or "chunks" not in context:
            return self
        sources = [str(chunk["text"]) for chunk in context["chunks"]]
        missing = [quote for quote in self.quotes() if not locate(quote, sources)]
        if missing:
            raise ValueError(
                "evidence quotes not found verbatim in the documentation: "
                f"{missing!r}. Copy quotes exactly from the text between the document tags, "
                "or drop the claim."
            )
        return self

    def quotes(self) -> list[str]:
        found = [quote for cap in self.capabilities for quote in cap.evidence]
        found.extend(fact.evidence for fact in self.profile_facts())
        return found

    def profile_facts(self) -> list[Fact | Price | FreeTier]:
        p = self.profile
        return [f for f in (p.type, p.starting_price, p.free_tier) if f is not None]


def locate(quote: str, sources: Sequence[str]) -> tuple[int, int, int, float] | None:
    """Find ``quote`` in the first source that holds it: (source index, start, end, score)."""
    best: tuple[int, int, int, float] | None = None
    for index, text in enumerate(sources):
        match = find_quote(quote, text)
        if match is None:
            continue
        if match.score == 100.0:
            return index, match.start, match.end, match.score
        if best is None or match.score > best[3]:
            best = (index, match.start, match.end, match.score)
    return best


def validation_context(chunks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"chunks": list(chunks)}
