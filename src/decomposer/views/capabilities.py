"""Capability records read back for `decomposer capabilities`, JSON output and the review UI."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from decomposer.core.errors import InputError
from decomposer.core.vocab import STATUSES, CapabilityStatus
from decomposer.store.models import Capability, Evidence
from decomposer.store.tools import get_tool


class EvidenceItem(BaseModel):
    """A quote backing a capability; ``document`` is its source path or URL."""

    model_config = ConfigDict(frozen=True)

    quote: str
    document: str | None
    document_title: str | None
    start: int | None
    end: int | None
    grounded: bool
    score: float | None


class CapabilityRecord(BaseModel):
    """A capability with its evidence, as ``decomposer capabilities --json`` prints it."""

    model_config = ConfigDict(frozen=True)

    id: str
    tool: str
    name: str
    category: str
    description: str
    unique: str
    vs_alternatives: str
    status: CapabilityStatus
    version: int
    evidence: list[EvidenceItem]


def list_capabilities(
    session: Session, tool_slug: str, status: str | None = None
) -> list[CapabilityRecord]:
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown status {status!r}", hint=f"use one of {', '.join(STATUSES)}")
    tool = get_tool(session, tool_slug)
    query = (
        select(Capability)
        .where(Capability.tool_id == tool.id)
        .options(selectinload(Capability.evidence).selectinload(Evidence.document))
        .order_by(Capability.category, Capability.name)
    )
    if status is not None:
        query = query.where(Capability.status == status)
    return [capability_record(c, tool_slug) for c in session.scalars(query)]


def capability_fields(cap: Capability, tool_slug: str) -> dict[str, object]:
    """The capability's own fields (no evidence), shared by every capability read model."""
    return {
        "id": cap.id,
        "tool": tool_slug,
        "name": cap.name,
        "category": cap.category,
        "description": cap.description,
        "unique": cap.unique,
        "vs_alternatives": cap.vs_alternatives,
        "status": cap.status,
        "version": cap.version,
    }


def capability_record(cap: Capability, tool_slug: str) -> CapabilityRecord:
    return CapabilityRecord.model_validate(
        {
            **capability_fields(cap, tool_slug),
            "evidence": [
                EvidenceItem(
                    quote=ev.quote,
                    document=ev.document.source if ev.document else None,
                    document_title=ev.document.title if ev.document else None,
                    start=ev.start,
                    end=ev.end,
                    grounded=ev.grounded,
                    score=ev.score,
                )
                for ev in cap.evidence
            ],
        }
    )
