"""Contrast as a task of the generic model caller: the fenced prompt context built from a
capability and its counterparts, the ``Contrast`` answer the checker validates, and its hash.

Everything sent is untrusted vendor text: it goes into the prompt only as template variables
(Instructor renders them in its sandbox, so ``{{ }}`` stays literal), each quote inside a
``<quote>`` tag with ``&``, ``<`` and ``>`` escaped so no text can close its tag, and the system
prompt says that text inside tags is data. Quotes get call-local ids (``Q1``…), so the request —
and its cache key — does not change when a re-extraction rewrites evidence rows with the same
text; ``ids`` maps them back to evidence rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from decomposer.calls.caller import ModelCaller
from decomposer.calls.calllog import CONTRAST
from decomposer.calls.prompts import Prompt
from decomposer.calls.runtime import RunSetup, open_caller
from decomposer.calls.task import Context, Task
from decomposer.catalog.catalogue import Price, Sourced
from decomposer.catalog.snapshot import CapRecord, ToolRecord
from decomposer.contrast.checker import Given, Quote, aliases, check
from decomposer.contrast.counterparts import Counterpart
from decomposer.core.config import Settings
from decomposer.store import Store

QUOTES_PER_CAPABILITY = 4
"""Grounded quotes sent per capability (the first ones, in evidence order)."""


class Contrast(BaseModel):
    """A one- or two-sentence "vs alternatives" line and the quote ids it relies on."""

    model_config = ConfigDict(extra="forbid")

    vs_alternatives: str | None = Field(
        description="1-2 sentences contrasting the capability with the named other tools; "
        "null when the quotes support no contrast"
    )
    citations: list[str] = Field(description="ids of the quotes the line relies on, e.g. Q1")

    @model_validator(mode="after")
    def _checked(self, info: ValidationInfo) -> Contrast:
        context = info.context if isinstance(info.context, dict) else None
        if not context or "capability" not in context or self.vs_alternatives is None:
            return self
        failures = check(self.vs_alternatives, self.citations, given_of(context))
        if failures:
            raise PydanticCustomError(
                "contrast_rejected",
                "the line was refused: {reasons}",
                {
                    "causes": [f.cause for f in failures],
                    "reasons": "; ".join(f.reason for f in failures),
                },
            )
        return self


def contrast_task(prompt: Prompt) -> Task[Contrast]:
    return Task(name=CONTRAST, prompt=prompt, response_model=Contrast)


@asynccontextmanager
async def contrast_caller(
    settings: Settings,
    store: Store,
    setup: RunSetup,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[ModelCaller[Contrast]]:
    """The generic caller bound to the contrast task (prompt version, limits, retries)."""
    async with open_caller(
        settings, store, setup, contrast_task, prompt_name=CONTRAST, transport=transport
    ) as caller:
        yield caller


def fence(text: str) -> str:
    """Untrusted text that cannot close the tag it is put in."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def facts_text(tool: ToolRecord) -> str:
    """The tool's catalogue row as one line of text (only what is known)."""
    parts: list[str] = []
    for name, item in sorted(tool.profile.items()):
        if item is None or name == "type":
            continue
        parts.append(f"{name.replace('_', ' ')}: {_value(item)}")
    return fence("; ".join(parts))


def _value(item: Sourced) -> str:
    value = item.value
    if isinstance(value, Price):
        amount = format(value.amount.normalize(), "f")
        money = f"${amount}" if value.currency == "USD" else f"{amount} {value.currency}"
        return f"{money} per {value.unit}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@dataclass(frozen=True)
class Built:
    """One call's context and what its quote ids stand for."""

    context: Context
    ids: dict[str, int]
    """Quote id -> evidence row id."""
    counterparts: list[str]
    """Counterpart capability ids."""

    @property
    def input_hash(self) -> str:
        return hashlib.sha256(
            json.dumps(self.context, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()


def build(tool: ToolRecord, cap: CapRecord, counterparts: list[Counterpart]) -> Built:
    """The prompt context for ``cap`` and its counterparts (grouped per other tool)."""
    ids: dict[str, int] = {}

    def quotes(c: CapRecord) -> list[dict[str, str]]:
        out = []
        for ev in [e for e in c.evidence if e.grounded][:QUOTES_PER_CAPABILITY]:
            qid = f"Q{len(ids) + 1}"
            ids[qid] = ev.id or 0
            out.append({"id": qid, "text": fence(ev.quote)})
        return out

    def capability(c: CapRecord) -> dict[str, Any]:
        return {"name": fence(c.name), "description": fence(c.description), "quotes": quotes(c)}

    own = {
        "name": tool.name,
        "vendor": tool.vendor or "",
        "facts": facts_text(tool),
    }
    context_cap = capability(cap)
    others: dict[str, dict[str, Any]] = {}
    for cp in counterparts:
        entry = others.setdefault(
            cp.tool.slug,
            {
                "name": cp.tool.name,
                "vendor": cp.tool.vendor or "",
                "facts": facts_text(cp.tool),
                "capabilities": [],
            },
        )
        entry["capabilities"].append(capability(cp.capability))
    context = {"tool": own, "capability": context_cap, "others": list(others.values())}
    return Built(context, ids, [cp.capability.id for cp in counterparts])


def given_of(context: Context) -> Given:
    """What the checker needs from a call's context."""
    own = context["tool"]
    tools = {own["name"]: aliases(own["name"], own.get("vendor") or None)}
    facts = {own["name"]: own.get("facts", "")}
    quotes = {
        q["id"]: Quote(q["id"], own["name"], q["text"]) for q in context["capability"]["quotes"]
    }
    material = [own["name"], own.get("vendor", ""), own.get("facts", "")]
    material += _texts(context["capability"])
    for other in context["others"]:
        tools[other["name"]] = aliases(other["name"], other.get("vendor") or None)
        facts[other["name"]] = other.get("facts", "")
        material += [other["name"], other.get("vendor", ""), other.get("facts", "")]
        for cap in other["capabilities"]:
            material += _texts(cap)
            quotes.update(
                {q["id"]: Quote(q["id"], other["name"], q["text"]) for q in cap["quotes"]}
            )
    return Given(own["name"], tools, quotes, facts, "\n".join(material))


def _texts(cap: dict[str, Any]) -> list[str]:
    return [cap["name"], cap["description"], *(q["text"] for q in cap["quotes"])]
