"""The structured output the model must return, and the grounding check Instructor re-asks on.

Every field is required (nullable where a fact may be absent) because strict JSON-schema modes
drop fields with defaults from ``required``. The grounding validator runs only when a validation
context carrying the source chunks is given, so stored or cached payloads can be re-read freely.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, model_validator

from decomposer.core.vocab import Category, PricingModel, enum_schema
from decomposer.extraction.grounding import find_quote

CategoryField = Annotated[Category, WithJsonSchema(enum_schema(Category))]
PricingModelField = Annotated[PricingModel, WithJsonSchema(enum_schema(PricingModel))]
WIRE_NAMES = {"ExtractedCapability": "Capability", "StatedPrice": "Price"}
"""Schema names the model has always been sent: renaming a class must not change the request
schema, whose digest is part of every cache key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExtractedCapability(_Strict):
    """One thing the product can do, as stated by its documentation."""

    name: str
    category: CategoryField
    description: str
    unique: str
    vs_alternatives: str
    evidence: list[str] = Field(min_length=1)


class Fact(_Strict):
    """A profile value with the quote that supports it."""

    value: str
    evidence: str


class StatedPrice(_Strict):
    """A price quoted by the docs, as the model read it (the catalogue has its own ``Price``)."""

    amount: float
    currency: str = Field(description="ISO code, e.g. USD")
    unit: str = Field(description="e.g. 1M input tokens")
    evidence: str


class FreeTier(_Strict):
    available: bool
    evidence: str


class Profile(_Strict):
    """Product facts; null where this part of the docs does not state them."""

    type: Fact | None = Field(description="API, Model, Library or Platform")
    pricing_model: PricingModelField | None
    starting_price: StatedPrice | None
    free_tier: FreeTier | None


class Extraction(_Strict):
    """Capabilities and profile facts found in one part of a product's documentation."""

    capabilities: list[ExtractedCapability]
    profile: Profile

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The schema sent with every call, without titles and docstrings: they cost tokens on
        every request and repeat what the field names and the system prompt already say.

        Built once (pydantic takes milliseconds per build, and every call needs it) and copied
        out, because callers such as Instructor may add keys to the dict they get."""
        if args or kwargs:
            lean: dict[str, Any] = _lean(super().model_json_schema(*args, **kwargs), top=True)
            return lean
        return copy.deepcopy(_schema())

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

    def profile_facts(self) -> list[Fact | StatedPrice | FreeTier]:
        p = self.profile
        return [f for f in (p.type, p.starting_price, p.free_tier) if f is not None]


@functools.cache
def _schema() -> dict[str, Any]:
    built: dict[str, Any] = _lean(super(Extraction, Extraction).model_json_schema(), top=True)
    return built


@functools.cache
def schema_sha256() -> str:
    """A digest of the request schema, for cache keys."""
    return hashlib.sha256(json.dumps(_schema(), sort_keys=True).encode()).hexdigest()


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


def _lean(node: Any, top: bool = False) -> Any:
    if isinstance(node, list):
        return [_lean(item) for item in node]
    if not isinstance(node, dict):
        return node
    is_model = node.get("type") == "object" and "properties" in node
    return {
        key: _lean_value(key, value)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str) and not top)
        and not (key == "description" and is_model and not top)
    }


def _lean_value(key: str, value: Any) -> Any:
    if key == "properties":
        return {name: _lean(sub) for name, sub in value.items()}
    if key == "$defs":
        renamed = {_wire(name): _lean(sub) for name, sub in value.items()}
        return dict(sorted(renamed.items()))
    if key == "$ref":
        prefix, _, name = value.rpartition("/")
        return f"{prefix}/{_wire(name)}"
    return _lean(value)


def _wire(name: str) -> str:
    return WIRE_NAMES.get(name, name)
