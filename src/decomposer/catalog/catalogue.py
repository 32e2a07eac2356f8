"""The tool catalogue: a TOML file declaring tools, their pricing and their score signals.

Format (documented in docs/comparator.md)::

    schema_version = 1

    [[tool]]
    slug = "mistral-api"            # optional; derived from name
    name = "Mistral API"
    vendor = "Mistral AI"
    type = "API"                    # one of decomposer.core.vocab.ToolType
    homepage = "https://docs.mistral.ai"
    categories = ["llm-api"]        # directory categories; `regenerate --all` pairs tools by these

    [tool.pricing]
    model = "freemium"              # free | freemium | paid | open-weights | unknown
    free_tier = true
    starting_price = { amount = "0.10", currency = "USD", unit = "1M input tokens" }
    checked_on = 2025-06-02         # optional: when a person last checked these values
    source = "https://mistral.ai/pricing"   # optional: where they were checked

    [tool.signals]                  # every signal is optional
    github_stars = 1200
    monthly_downloads = 850000
    hf_likes = 0
    integrations = 40
    last_release = 2025-06-02       # a TOML date
    checked_on = 2025-06-02         # optional, as for pricing
    source = "https://github.com/mistralai"

Importing is all-or-nothing: the whole file is validated before anything is written. The catalogue
wins over profile facts extracted from the docs; facts fill only what the catalogue leaves out.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.core.errors import InputError
from decomposer.core.text import slugify
from decomposer.core.vocab import TOOL_TYPES, PricingModel
from decomposer.store.catalogue_models import CatalogueEntry
from decomposer.store.models import Document, ProfileFact, Tool
from decomposer.store.tools import find_tool

SCHEMA_VERSION = 1
PROFILE_FIELDS = ("type", "pricing_model", "starting_price", "free_tier")
COUNT_SIGNALS = ("github_stars", "monthly_downloads", "hf_likes", "integrations")
SIGNALS = (*COUNT_SIGNALS, "last_release")
PROVENANCE_KEY = "provenance"
"""Key in ``CatalogueEntry.signals`` holding ``{"pricing": {...}, "signals": {...}}`` checks."""
STALE_AFTER_DAYS = 90


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceSpec(_Strict):
    amount: Decimal = Field(ge=0, allow_inf_nan=False)
    currency: str = Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    unit: str = Field(min_length=1, max_length=100)


class _Checked(_Strict):
    """Where a table's values were checked and when (both optional; see ``STALE_AFTER_DAYS``)."""

    checked_on: date | None = None
    source: str | None = Field(default=None, min_length=1, max_length=2000)

    @field_validator("checked_on", mode="before")
    @classmethod
    def _plain_checked(cls, value: Any) -> Any:
        return value.date() if isinstance(value, datetime) else value

    def provenance(self) -> dict[str, str]:
        out = {"checked_on": self.checked_on.isoformat() if self.checked_on else None}
        return {k: v for k, v in (out | {"source": self.source}).items() if v is not None}


class PricingSpec(_Checked):
    model: PricingModel | None = None
    free_tier: bool | None = None
    starting_price: PriceSpec | None = None


class SignalsSpec(_Checked):
    github_stars: int | None = Field(default=None, ge=0)
    monthly_downloads: int | None = Field(default=None, ge=0)
    hf_likes: int | None = Field(default=None, ge=0)
    integrations: int | None = Field(default=None, ge=0)
    last_release: date | None = None

    @field_validator("last_release", mode="before")
    @classmethod
    def _plain_date(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            return value.date()
        return value

    def values(self) -> dict[str, Any]:
        """The signals themselves, as stored (JSON), without ``checked_on``/``source``."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"checked_on", "source"})


class ToolSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, max_length=100)
    vendor: str | None = Field(default=None, max_length=200)
    type: str | None = None
    homepage: str | None = Field(default=None, max_length=500)
    categories: list[str] = Field(default_factory=list)
    pricing: PricingSpec = Field(default_factory=PricingSpec)
    signals: SignalsSpec = Field(default_factory=SignalsSpec)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value not in TOOL_TYPES:
            raise ValueError(f"unknown tool type {value!r}; use one of {', '.join(TOOL_TYPES)}")
        return value

    @field_validator("categories")
    @classmethod
    def _category_slugs(cls, value: list[str]) -> list[str]:
        return sorted({slugify(v) for v in value})

    @property
    def final_slug(self) -> str:
        return self.slug or slugify(self.name)


class CatalogueFile(_Strict):
    schema_version: Literal[1] = 1
    tool: list[ToolSpec] = Field(min_length=1)


def load_catalogue(path: Path) -> list[ToolSpec]:
    """Parse and validate a catalogue file; every problem is one line naming the file and tool."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read catalogue {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None
    try:
        catalogue = CatalogueFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {_first_error(exc, data)}") from None
    for index, spec in enumerate(catalogue.tool):
        if spec.slug is not None and slugify(spec.slug) != spec.slug:
            raise InputError(
                f"{path}: tool[{index}] ({spec.name}): invalid slug {spec.slug!r}",
                hint=f"use lowercase-hyphenated, e.g. {slugify(spec.slug)!r}",
            )
    seen: set[str] = set()
    for spec in catalogue.tool:
        if spec.final_slug in seen:
            raise InputError(f"{path}: tool {spec.final_slug!r} is declared twice")
        seen.add(spec.final_slug)
    return list(catalogue.tool)


def _first_error(exc: ValidationError, data: Any) -> str:
    err = exc.errors()[0]
    loc = list(err["loc"])
    where = ".".join(str(p) for p in loc)
    if len(loc) >= 2 and loc[0] == "tool" and isinstance(loc[1], int):
        tools = data.get("tool") if isinstance(data, dict) else None
        name = None
        if isinstance(tools, list) and loc[1] < len(tools) and isinstance(tools[loc[1]], dict):
            name = tools[loc[1]].get("name")
        rest = ".".join(str(p) for p in loc[2:])
        where = f"tool[{loc[1]}]" + (f" ({name})" if name else "") + (f" {rest}" if rest else "")
    message = str(err["msg"]).replace("\n", " ")
    return f"{where}: {message}" if where else message


@dataclass(frozen=True)
class ImportReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def spec_hash(spec: ToolSpec) -> str:
    blob = json.dumps(spec.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def import_catalogue(
    session: Session, specs: list[ToolSpec], *, source: str, now: datetime
) -> ImportReport:
    """Create or update each tool and its catalogue entry; an identical entry is left untouched."""
    report = ImportReport()
    for spec in specs:
        slug = spec.final_slug
        digest = spec_hash(spec)
        tool = find_tool(session, slug)
        if tool is None:
            tool = Tool(slug=slug, name=spec.name, created_at=now)
            session.add(tool)
            session.flush()
            report.added.append(slug)
        entry = session.get(CatalogueEntry, tool.id)
        if entry is not None and entry.content_hash == digest and _tool_matches(tool, spec):
            report.unchanged.append(slug)
            continue
        tool.name = spec.name
        tool.vendor = spec.vendor if spec.vendor is not None else tool.vendor
        tool.type = spec.type if spec.type is not None else tool.type
        tool.homepage = spec.homepage if spec.homepage is not None else tool.homepage
        price = spec.pricing.starting_price
        values: dict[str, Any] = {
            "categories": list(spec.categories),
            "pricing_model": spec.pricing.model,
            "free_tier": spec.pricing.free_tier,
            "price_amount": format(price.amount, "f") if price else None,
            "price_currency": price.currency if price else None,
            "price_unit": price.unit if price else None,
            "signals": _stored_signals(spec),
            "source": source,
            "content_hash": digest,
            "imported_at": now,
        }
        if entry is None:
            session.add(CatalogueEntry(tool_id=tool.id, revision=1, **values))
        else:
            for key, value in values.items():
                setattr(entry, key, value)
            entry.revision += 1
        if slug not in report.added:
            report.updated.append(slug)
    session.flush()
    return report


def _stored_signals(spec: ToolSpec) -> dict[str, Any]:
    """Signal values, plus where and when pricing and signals were checked (when declared)."""
    checks = {
        name: p
        for name, p in (
            ("pricing", spec.pricing.provenance()),
            ("signals", spec.signals.provenance()),
        )
        if p
    }
    return spec.signals.values() | ({PROVENANCE_KEY: checks} if checks else {})


def checks_of(entry: CatalogueEntry | None, table: str) -> tuple[date | None, str | None]:
    """``(checked_on, source)`` declared for the ``pricing`` or ``signals`` table of an entry."""
    if entry is None:
        return None, None
    raw = entry.signals.get(PROVENANCE_KEY)
    item = raw.get(table) if isinstance(raw, dict) else None
    if not isinstance(item, dict):
        return None, None
    when = item.get("checked_on")
    source = item.get("source")
    return (
        date.fromisoformat(when) if isinstance(when, str) else None,
        source if isinstance(source, str) else None,
    )


def _tool_matches(tool: Tool, spec: ToolSpec) -> bool:
    return (
        tool.name == spec.name
        and (spec.vendor is None or tool.vendor == spec.vendor)
        and (spec.type is None or tool.type == spec.type)
        and (spec.homepage is None or tool.homepage == spec.homepage)
    )


# --- the effective profile: catalogue first, then grounded facts from the docs ----------------


@dataclass(frozen=True)
class Price:
    amount: Decimal
    currency: str
    unit: str

    def as_json(self) -> dict[str, str]:
        return {"amount": format(self.amount, "f"), "currency": self.currency, "unit": self.unit}


@dataclass(frozen=True)
class Sourced:
    """One profile value and where it came from: 'catalogue', 'tool' (registry) or 'docs'.

    ``origin`` and ``checked_on`` are what the catalogue declares for the value's table (the
    page says where the value was checked and when; unknown stays None, never a guess).
    """

    value: Any
    source: str
    quote: str | None = None
    origin: str | None = None
    checked_on: date | None = None

    def as_json(self) -> dict[str, Any]:
        value = self.value.as_json() if isinstance(self.value, Price) else self.value
        return {
            "value": value,
            "source": self.source,
            "quote": self.quote,
            "origin": self.origin,
            "checked_on": self.checked_on.isoformat() if self.checked_on else None,
        }


@dataclass(frozen=True)
class FactRow:
    field: str
    value: Any
    quote: str | None
    grounded: bool


def effective_profile(
    tool_type: str | None, entry: CatalogueEntry | None, facts: list[FactRow]
) -> dict[str, Sourced | None]:
    """Type, pricing model, starting price and free tier; only grounded doc facts are used."""
    docs = {f.field: f for f in facts if f.grounded}
    out: dict[str, Sourced | None] = dict.fromkeys(PROFILE_FIELDS)
    checked, origin = checks_of(entry, "pricing")
    if tool_type:
        out["type"] = Sourced(tool_type, "catalogue" if entry is not None else "tool")
    elif "type" in docs and isinstance(docs["type"].value, str):
        out["type"] = Sourced(docs["type"].value, "docs", docs["type"].quote)
    if entry is not None and entry.pricing_model:
        out["pricing_model"] = Sourced(entry.pricing_model, "catalogue", None, origin, checked)
    elif "pricing_model" in docs and isinstance(docs["pricing_model"].value, str):
        out["pricing_model"] = Sourced(
            docs["pricing_model"].value, "docs", docs["pricing_model"].quote
        )
    if entry is not None and entry.price_amount is not None:
        out["starting_price"] = Sourced(
            Price(
                Decimal(entry.price_amount), entry.price_currency or "USD", entry.price_unit or ""
            ),
            "catalogue",
            None,
            origin,
            checked,
        )
    elif "starting_price" in docs:
        price = _price_from_fact(docs["starting_price"].value)
        if price is not None:
            out["starting_price"] = Sourced(price, "docs", docs["starting_price"].quote)
    if entry is not None and entry.free_tier is not None:
        out["free_tier"] = Sourced(entry.free_tier, "catalogue", None, origin, checked)
    elif "free_tier" in docs and isinstance(docs["free_tier"].value, bool):
        out["free_tier"] = Sourced(docs["free_tier"].value, "docs", docs["free_tier"].quote)
    return out


def _price_from_fact(value: Any) -> Price | None:
    if not isinstance(value, dict):
        return None
    amount = value.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        return None
    try:
        dec = Decimal(str(amount))
    except ArithmeticError:
        return None
    if not dec.is_finite() or dec < 0:
        return None
    return Price(dec, str(value.get("currency") or "USD").upper(), str(value.get("unit") or ""))


def load_facts(session: Session, tool_ids: list[int] | None = None) -> dict[int, list[FactRow]]:
    query = select(
        ProfileFact.tool_id,
        ProfileFact.field,
        ProfileFact.value,
        ProfileFact.quote,
        ProfileFact.grounded,
    )
    if tool_ids is not None:
        query = query.where(ProfileFact.tool_id.in_(tool_ids))
    out: dict[int, list[FactRow]] = {}
    for tool_id, name, value, quote, grounded in session.execute(query):
        out.setdefault(tool_id, []).append(FactRow(name, value, quote, bool(grounded)))
    return out


# --- stale values: catalogue checks and documents older than the allowed age ------------------


@dataclass(frozen=True)
class StaleItem:
    """One value or document whose last check is older than allowed, or was never dated."""

    tool: str
    what: str
    source: str
    checked_on: date | None
    age_days: int | None


def is_stale(checked_on: date | None, as_of: date, max_age_days: int) -> bool:
    """Undated counts as stale: a value nobody says was checked cannot be called current."""
    return checked_on is None or (as_of - checked_on).days > max_age_days


def stale_items(session: Session, as_of: date, max_age_days: int) -> list[StaleItem]:
    """Catalogue pricing/signals and documents last checked more than ``max_age_days`` ago."""
    out: list[StaleItem] = []
    tools = {tool_id: slug for tool_id, slug in session.execute(select(Tool.id, Tool.slug))}
    for entry in session.scalars(select(CatalogueEntry).order_by(CatalogueEntry.tool_id)):
        declared = {
            "pricing": any(
                v is not None for v in (entry.pricing_model, entry.free_tier, entry.price_amount)
            ),
            "signals": any(k != PROVENANCE_KEY for k in entry.signals),
        }
        for table, present in declared.items():
            checked, origin = checks_of(entry, table)
            if present and is_stale(checked, as_of, max_age_days):
                slug = tools[entry.tool_id]
                out.append(_stale(slug, f"catalogue {table}", origin, checked, as_of))
    docs = select(Document.tool_id, Document.source, Document.updated_at).order_by(
        Document.tool_id, Document.source
    )
    for tool_id, source, updated in session.execute(docs):
        when = updated.date() if isinstance(updated, datetime) else updated
        if is_stale(when, as_of, max_age_days):
            out.append(_stale(tools[tool_id], "document", source, when, as_of))
    return sorted(out, key=lambda i: (i.tool, i.what, i.source))


def _stale(tool: str, what: str, source: str | None, when: date | None, as_of: date) -> StaleItem:
    where = source or ("catalogue entry" if what.startswith("catalogue") else "unknown")
    age = (as_of - when).days if when is not None else None
    return StaleItem(tool, what, where, when, age)
