"""The tool registry: the products whose docs we ingest and compare."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from decomposer.core.errors import InputError, NotFoundError
from decomposer.core.text import slugify
from decomposer.core.vocab import TOOL_TYPES
from decomposer.store.models import Capability, Document, Tool


def add_tool(
    session: Session,
    name: str,
    *,
    now: datetime,
    slug: str | None = None,
    type: str | None = None,
    vendor: str | None = None,
    homepage: str | None = None,
) -> Tool:
    name = name.strip()
    if not name:
        raise InputError("a tool needs a name")
    final_slug = slugify(slug or name)
    if slug is not None and final_slug != slug:
        raise InputError(
            f"invalid slug {slug!r}", hint=f"use lowercase-hyphenated, e.g. {final_slug!r}"
        )
    if type is not None and type not in TOOL_TYPES:
        raise InputError(f"unknown tool type {type!r}", hint=f"use one of {', '.join(TOOL_TYPES)}")
    if find_tool(session, final_slug) is not None:
        raise InputError(f"tool {final_slug!r} already exists")
    tool = Tool(
        slug=final_slug, name=name, type=type, vendor=vendor, homepage=homepage, created_at=now
    )
    session.add(tool)
    session.flush()
    return tool


def find_tool(session: Session, slug: str) -> Tool | None:
    return session.scalar(select(Tool).where(Tool.slug == slug))


def get_tool(session: Session, slug: str) -> Tool:
    tool = find_tool(session, slug)
    if tool is None:
        known = session.scalars(select(Tool.slug).order_by(Tool.slug)).all()
        hint = (
            f"known tools: {', '.join(known)}"
            if known
            else "add one with `decomposer tool add NAME`"
        )
        raise NotFoundError(f"unknown tool {slug!r}", hint=hint)
    return tool


def remove_tool(session: Session, slug: str) -> dict[str, object]:
    """Delete a tool with everything stored for it (documents, chunks, runs, capabilities and
    their history, catalogue entry); the database cascades. Returns what went, for the CLI."""
    tool = get_tool(session, slug)
    counts = {
        "documents": session.scalar(select(func.count()).where(Document.tool_id == tool.id)),
        "capabilities": session.scalar(select(func.count()).where(Capability.tool_id == tool.id)),
    }
    result: dict[str, object] = {"id": tool.id, "slug": tool.slug, **counts}
    session.execute(delete(Tool).where(Tool.id == tool.id))
    session.expunge_all()
    return result
