"""Ingest: load sources, store each document with its content hash, and (re)chunk changed ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS, chunk_document
from decomposer.ingest.sources import SourceDocument, load_sources
from decomposer.store import Store
from decomposer.store.models import Chunk, Document, Tool
from decomposer.store.tools import get_tool


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chunks_written: int = 0


def ingest(
    store: Store,
    tool_slug: str,
    inputs: list[str],
    *,
    now: datetime,
    budget: int = DEFAULT_CHUNK_TOKENS,
    http_client: httpx.Client | None = None,
) -> IngestReport:
    """Load and validate every input before writing; all writes are one transaction."""
    with store.transaction() as session:
        get_tool(session, tool_slug)
    documents, notes = load_sources(inputs, http_client=http_client)
    report = IngestReport(notes=notes)
    with store.transaction() as session:
        tool = get_tool(session, tool_slug)
        for doc in documents:
            _store_document(session, tool, doc, now, budget, report)
    return report


def _store_document(
    session: Session,
    tool: Tool,
    doc: SourceDocument,
    now: datetime,
    budget: int,
    report: IngestReport,
) -> None:
    row = session.scalar(
        select(Document).where(Document.tool_id == tool.id, Document.source == doc.source)
    )
    if row is not None and row.content_hash == doc.content_hash:
        report.unchanged.append(doc.source)
        return
    if row is None:
        row = Document(tool_id=tool.id, source=doc.source, ingested_at=now)
        session.add(row)
        report.added.append(doc.source)
    else:
        row.chunks.clear()
        session.flush()
        report.updated.append(doc.source)
    row.title = doc.title
    row.media_type = doc.media_type
    row.content_hash = doc.content_hash
    row.text = doc.text
    row.updated_at = now
    pieces = chunk_document(f"{tool.slug}:{doc.source}", doc.text, budget)
    row.chunks.extend(
        Chunk(
            id=c.id,
            ordinal=c.ordinal,
            start=c.start,
            end=c.end,
            heading=c.heading,
            text=c.text,
            tokens=c.tokens,
        )
        for c in pieces
    )
    report.chunks_written += len(pieces)
