"""ORM tables for model-written "vs alternatives" lines (`decomposer contrast`) and the provider
batches that buy their first answers (`contrast --batch`); schema owned by migration 0014."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from decomposer.store.models import Base


class ContrastLine(Base):
    """One contrast line for one capability, with the inputs it was written from.

    ``status`` is a ``ContrastStatus``. ``input_hash`` covers the capability, its counterparts,
    their evidence and the prompt, so an unchanged re-run finds the row and makes no call.
    ``citations`` are evidence row ids (both tools); ``counterparts`` are capability ids.
    ``text`` is what pages show once approved; ``model_text`` is what the model wrote (they
    differ after an edit). A line that failed the checker is kept as ``dropped``, never shown.
    """

    __tablename__ = "contrast_lines"
    __table_args__ = (Index("ix_contrast_lines_capability", "capability_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    capability_id: Mapped[str] = mapped_column(ForeignKey("capabilities.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    model_text: Mapped[str] = mapped_column(Text)
    citations: Mapped[list[int]] = mapped_column(JSON)
    counterparts: Mapped[list[str]] = mapped_column(JSON)
    input_hash: Mapped[str] = mapped_column(String(64), index=True)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[str] = mapped_column(String(50))
    rejections: Mapped[list[str]] = mapped_column(JSON)
    """The checker's causes for every refused answer before this one (re-asks)."""
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    call_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "capability_id": self.capability_id,
            "status": self.status,
            "text": self.text,
            "citations": list(self.citations),
            "counterparts": list(self.counterparts),
            "provider": self.provider,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "edited": self.edited,
            "created_at": self.created_at.isoformat(),
        }


class ContrastBatch(Base):
    """Contrast calls sent through a provider's Batch API (``contrast --batch``).

    ``items`` maps each request's custom id to ``{"capability_id", "request_hash",
    "context"}``: the context is kept so the answer is checked exactly as the inline path would
    check it. ``collected_at`` is set once the answers were judged, cached or refused.
    """

    __tablename__ = "contrast_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(50))
    base_url: Mapped[str | None] = mapped_column(String(500))
    prompt_version: Mapped[str] = mapped_column(String(50))
    input_file_id: Mapped[str] = mapped_column(String(200))
    output_file_id: Mapped[str | None] = mapped_column(String(200))
    error_file_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(40))
    items: Mapped[dict[str, Any]] = mapped_column(JSON)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    collected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
