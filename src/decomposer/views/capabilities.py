"""Reading capability records back, as plain data for the CLI, the JSON output and the web UI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from decomposer.core.errors import InputError
from decomposer.core.vocab import STATUSES
from decomposer.store.models import Capability, Evidence
from decomposer.store.tools import get_tool


def list_capabilities(
    session: Session, tool_slug: str, status: str | None = None
) -> list[dict[str, Any]]:
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
    return [capability_dict(c, tool_slug) for c in session.scalars(query)]


def capability_dict(cap: Capability, tool_slug: str) -> dict[str, Any]:
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
        "evidence": [
            {
                "quote": ev.quote,
                "document": ev.document.source if ev.document else None,
                "document_title": ev.document.title if ev.document else None,
                "start": ev.start,
                "end": ev.end,
                "grounded": ev.grounded,
                "score": ev.score,
            }
            for ev in cap.evidence
        ],
    }
