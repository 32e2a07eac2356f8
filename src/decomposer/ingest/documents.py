"""Ingest: load sources, store each document with its content hash, and (re)chunk changed ones.

Documents are found again by their source key (the URL, or the path below the ingested folder's
parent), not by absolute path, so ingesting a moved or copied folder re-uses the stored chunks:
chunk ids, and so request hashes, derive from the key.

A document is re-chunked when its text changed or when it is ingested with a different chunk
budget than the one it was chunked with (``Document.chunk_budget``; NULL, from stores older
than that column, counts as ``DEFAULT_CHUNK_TOKENS``, the only budget the CLI used by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.core.config import DEFAULT_FETCH_DEADLINE
from decomposer.core.errors import InputError
from decomposer.ingest.chunks import (
    DEFAULT_CHUNK_TOKENS,
    MAX_CHUNK_TOKENS,
    MIN_CHUNK_TOKENS,
    TextChunk,
    chunk_document,
)
from decomposer.ingest.reground import reground
from decomposer.ingest.sources import DEFAULT_MAX_BYTES, SourceDocument, load_sources
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
    keys: list[str] = field(default_factory=list)
    """The source key of every document this ingest read (for ``--prune``)."""
    missing: list[str] = field(default_factory=list)
    """Source keys of stored documents under an ingested folder whose file is gone."""
    vanished: list[str] = field(default_factory=list)
    """Capabilities flagged vanished because only missing documents backed them."""


MissingHook = Callable[[Session, list[Document], datetime], list[str]]
"""Called in the ingest's transaction with the documents found missing; returns the ids of the
capabilities it flagged vanished (the CLI passes ``review.diff.vanish_missing``)."""


def check_budget(budget: int) -> int:
    """Refuse a chunk budget the chunker cannot honour (or the store cannot hold), in one line."""
    if not MIN_CHUNK_TOKENS <= budget <= MAX_CHUNK_TOKENS:
        raise InputError(
            f"--chunk-tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS} "
            f"tokens, got {budget}"
        )
    return budget


def ingest(
    store: Store,
    tool_slug: str,
    inputs: list[str],
    *,
    now: datetime,
    budget: int = DEFAULT_CHUNK_TOKENS,
    http_client: httpx.Client | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    fetch_deadline: float = DEFAULT_FETCH_DEADLINE,
    clock: Callable[[], float] = time.monotonic,
    on_missing: MissingHook | None = None,
) -> IngestReport:
    """Load and validate every input before writing; all writes are one transaction.

    A stored document whose key lies under an ingested folder but whose file is no longer there
    is reported missing and marked (``missing_since``): its row, text and history stay, its
    chunks are left out of extraction, and ``on_missing`` may flag its capabilities vanished.
    """
    check_budget(budget)
    with store.transaction() as session:
        get_tool(session, tool_slug)
    documents, notes = load_sources(
        inputs,
        http_client=http_client,
        max_bytes=max_bytes,
        fetch_deadline=fetch_deadline,
        clock=clock,
    )
    report = IngestReport(notes=notes)
    with store.transaction() as session:
        tool = get_tool(session, tool_slug)
        for doc in documents:
            report.keys.append(doc.key)
            _store_document(session, tool, doc, now, budget, report)
        gone = _missing(session, tool, _folder_roots(inputs), set(report.keys))
        for row in gone:
            row.missing_since = row.missing_since or now
            report.missing.append(row.source_key)
        if gone and on_missing is not None:
            report.vanished = on_missing(session, gone, now)
    return report


def _folder_roots(inputs: list[str]) -> list[str]:
    """The key prefix (``name/``) of every folder among the inputs."""
    paths = [Path(raw.strip()).expanduser() for raw in inputs]
    return [f"{p.resolve().name}/" for p in paths if p.is_dir()]


def _missing(session: Session, tool: Tool, roots: list[str], seen: set[str]) -> list[Document]:
    if not roots:
        return []
    rows = session.scalars(
        select(Document).where(Document.tool_id == tool.id).order_by(Document.source_key)
    )
    return [
        row
        for row in rows
        if row.source_key not in seen and any(row.source_key.startswith(r) for r in roots)
    ]


def _store_document(
    session: Session,
    tool: Tool,
    doc: SourceDocument,
    now: datetime,
    budget: int,
    report: IngestReport,
) -> None:
    row = _stored(session, tool, doc)
    if row is not None and (row.source, row.source_key) != (doc.source, doc.key):
        if row.source != doc.source:
            report.notes.append(f"{doc.key}: now read from {doc.source} (was {row.source})")
        row.source, row.source_key = doc.source, doc.key
    if row is not None and row.missing_since is not None:
        row.missing_since = None
        report.notes.append(
            f"{doc.key}: found again; run `decomposer extract {tool.slug}` to find its "
            "capabilities again"
        )
    pieces: list[TextChunk] | None = None
    if row is not None and row.content_hash == doc.content_hash:
        previous = row.chunk_budget or DEFAULT_CHUNK_TOKENS
        if previous == budget:
            report.unchanged.append(doc.source)
            return
        pieces = chunk_document(f"{tool.slug}:{doc.key}", doc.text, budget)
        if _same_chunks(pieces, row.chunks):
            row.chunk_budget = budget
            report.unchanged.append(doc.source)
            return
        report.notes.append(f"re-chunked {doc.source}: budget {previous} → {budget} tokens")
    if row is None:
        row = Document(tool_id=tool.id, source=doc.source, source_key=doc.key, ingested_at=now)
        session.add(row)
        report.added.append(doc.source)
    else:
        if row.content_hash != doc.content_hash:
            moved = reground(session, row.id, row.text, doc.text)
            if moved.lost:
                report.notes.append(
                    f"{doc.source}: {moved.lost} evidence quote(s) are not in the new text; "
                    "they are kept but no longer point into the document"
                )
        row.chunks.clear()
        session.flush()
        report.updated.append(doc.source)
    row.title = doc.title
    row.media_type = doc.media_type
    row.content_hash = doc.content_hash
    row.text = doc.text
    row.updated_at = now
    row.chunk_budget = budget
    if pieces is None:
        pieces = chunk_document(f"{tool.slug}:{doc.key}", doc.text, budget)
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


def _stored(session: Session, tool: Tool, doc: SourceDocument) -> Document | None:
    """The stored document by its stable key, else (a store from before keys, or a file first
    ingested on its own and now in a folder) by the exact place it was read from."""
    for column, value in ((Document.source_key, doc.key), (Document.source, doc.source)):
        row = session.scalar(select(Document).where(Document.tool_id == tool.id, column == value))
        if row is not None:
            return row
    return None


def _same_chunks(pieces: list[TextChunk], stored: list[Chunk]) -> bool:
    """A budget change that cuts the text the same way (a short page) needs no new chunks."""
    return [(c.id, c.start, c.end) for c in pieces] == [(c.id, c.start, c.end) for c in stored]
