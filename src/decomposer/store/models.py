"""The core ORM tables: tools, documents and chunks, extraction runs and jobs, the model call log
and cache, capabilities with their evidence, and profile facts.

The schema itself is owned by the Alembic migrations beside this module. Columns holding a word
from a vocabulary are plain strings; the words are defined in ``decomposer.core.vocab``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class StoreInfo(Base):
    """Facts about the store itself: ``schema_written_by`` is the decomposer version that last
    migrated it, quoted when an older version meets a newer schema."""

    __tablename__ = "store_info"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Tool(Base):
    """A product whose docs are ingested; ``type`` is a ``ToolType``."""

    __tablename__ = "tools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str | None] = mapped_column(String(50))
    vendor: Mapped[str | None] = mapped_column(String(200))
    homepage: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    documents: Mapped[list[Document]] = relationship(back_populates="tool")


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("tool_id", "source"),
        UniqueConstraint("tool_id", "source_key", name="uq_documents_tool_id_source_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tool_id: Mapped[int] = mapped_column(ForeignKey("tools.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(2000))
    """Where it was last read from: the URL or the absolute path (pages show only the name)."""
    source_key: Mapped[str] = mapped_column(String(2000))
    """Its stable identity in the tool (``SourceDocument.key``): a moved folder matches it."""
    title: Mapped[str] = mapped_column(String(500))
    media_type: Mapped[str] = mapped_column(String(50))
    content_hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    chunk_budget: Mapped[int | None] = mapped_column(Integer, default=None)
    """Token budget the chunks were cut with; NULL (older stores) means DEFAULT_CHUNK_TOKENS."""
    missing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    """Set when a re-ingest of its folder no longer found its file; NULL while it is there."""

    tool: Mapped[Tool] = relationship(back_populates="documents")
    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="Chunk.ordinal"
    )


class Chunk(Base):
    __tablename__ = "chunks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(String(1000))
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer)

    document: Mapped[Document] = relationship(back_populates="chunks")


class ExtractionRun(Base):
    """One extraction of a tool's documents; ``status`` is a ``RunStatus``."""

    __tablename__ = "extraction_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tool_id: Mapped[int] = mapped_column(ForeignKey("tools.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(50))
    base_url: Mapped[str | None] = mapped_column(String(500))
    temperature: Mapped[float] = mapped_column(Float)
    prompt_name: Mapped[str] = mapped_column(String(100))
    prompt_version: Mapped[str] = mapped_column(String(50))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    capabilities: Mapped[int] = mapped_column(Integer, default=0)
    ungrounded: Mapped[int] = mapped_column(Integer, default=0)
    max_tokens: Mapped[int] = mapped_column(Integer, default=4096)
    pack_tokens: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """One model request of a run (a chunk or a packed group), durable across crashes.

    ``state`` is a ``JobState``: ``done`` means the answer is in ``llm_cache`` under
    ``request_hash``; a ``running`` job whose lease expired, or whose local worker process is
    gone, is claimable again.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("run_id", "position"),
        Index("ix_jobs_run_state", "run_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("extraction_runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    chunk_ids: Mapped[list[str]] = mapped_column(JSON)
    request_hash: Mapped[str] = mapped_column(String(64))
    tokens: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    batch_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LLMCall(Base):
    """One logical model call (all its re-ask attempts), a cache hit that replaced one, one
    Batch API result or one embeddings request; ``task`` says which kind of call it was."""

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("extraction_runs.id", ondelete="SET NULL"), index=True
    )
    chunk_id: Mapped[str | None] = mapped_column(String(40))
    task: Mapped[str] = mapped_column(String(20), default="extract", server_default="extract")
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(50))
    prompt_version: Mapped[str] = mapped_column(String(50))
    request_hash: Mapped[str] = mapped_column(String(64), index=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    rejections: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    """Why the answers Instructor re-asked on failed validation: one cause per failed check
    (e.g. a contrast checker's ``invented_number``), so rejection rates can be counted."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CachedResponse(Base):
    """The model's final structured answer to one request, keyed by the request's hash."""

    __tablename__ = "llm_cache"

    request_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    validated: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """False for an answer kept after its re-asks ran out: stored for the run, never a hit."""


class RawAnswer(Base):
    """A raw provider answer journalled by the hash of the HTTP request that bought it, kept
    until its logical call has a verdict (see ``calls.answers``)."""

    __tablename__ = "llm_answers"

    body_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Capability(Base):
    """A capability record, merged across chunks and runs; ``status`` is a
    ``CapabilityStatus`` and ``category`` a ``Category``."""

    __tablename__ = "capabilities"
    __table_args__ = (Index("ix_capabilities_tool_status", "tool_id", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tool_id: Mapped[int] = mapped_column(ForeignKey("tools.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(Text)
    unique: Mapped[str] = mapped_column("unique_line", Text)
    vs_alternatives: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1)
    first_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("extraction_runs.id", ondelete="SET NULL")
    )
    last_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("extraction_runs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    evidence: Mapped[list[Evidence]] = relationship(
        back_populates="capability", cascade="all, delete-orphan", order_by="Evidence.id"
    )


class Evidence(Base):
    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    capability_id: Mapped[str] = mapped_column(
        ForeignKey("capabilities.id", ondelete="CASCADE"), index=True
    )
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="SET NULL"))
    chunk_id: Mapped[str | None] = mapped_column(String(40))
    quote: Mapped[str] = mapped_column(Text)
    start: Mapped[int | None] = mapped_column(Integer)
    end: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    grounded: Mapped[bool] = mapped_column(Boolean)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("extraction_runs.id", ondelete="SET NULL")
    )

    capability: Mapped[Capability] = relationship(back_populates="evidence")
    document: Mapped[Document | None] = relationship()


class ProfileFact(Base):
    """A product fact (type, pricing model, starting price, free tier) with its evidence."""

    __tablename__ = "profile_facts"
    __table_args__ = (UniqueConstraint("tool_id", "field"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tool_id: Mapped[int] = mapped_column(ForeignKey("tools.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(50))
    value: Mapped[object] = mapped_column(JSON)
    quote: Mapped[str | None] = mapped_column(Text)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="SET NULL"))
    start: Mapped[int | None] = mapped_column(Integer)
    end: Mapped[int | None] = mapped_column(Integer)
    grounded: Mapped[bool] = mapped_column(Boolean)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("extraction_runs.id", ondelete="SET NULL")
    )
