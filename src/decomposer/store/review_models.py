"""ORM tables for reviewing: the audit trail, pending re-extraction changes and extraction
baselines. The schema is owned by migration 0003."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from decomposer.store.models import Base


class ReviewEvent(Base):
    """One append-only entry in a capability's history: a person's review action or a
    system event from an extraction run (``created``, ``updated``, ``proposed_change``,
    ``vanished``, ``reappeared``).

    ``changes`` maps a field to ``[before, after]``; ``status`` changes are included there too.
    ``version`` is the capability's version *after* the event. Rows are never updated or deleted.
    """

    __tablename__ = "review_events"
    __table_args__ = (Index("ix_review_events_capability", "capability_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    capability_id: Mapped[str] = mapped_column(ForeignKey("capabilities.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(200))
    system: Mapped[bool] = mapped_column(Boolean, default=False)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("extraction_runs.id", ondelete="SET NULL")
    )
    proposal_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CapabilityProposal(Base):
    """A re-extraction's pending change to a reviewed capability, awaiting a decision.

    ``kind`` is ``changed`` (``changes`` maps field -> {"old": current, "new": extracted}) or
    ``vanished`` (the capability was not found by run ``run_id``; ``previous_status`` is what it
    was before). ``state`` is ``open``, ``accepted``, ``dismissed`` or ``superseded``.
    """

    __tablename__ = "capability_proposals"
    __table_args__ = (Index("ix_capability_proposals_open", "capability_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    capability_id: Mapped[str] = mapped_column(ForeignKey("capabilities.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("extraction_runs.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(20))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    previous_status: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(200))


class CapabilityBaseline(Base):
    """The text the model last extracted for a capability, so a re-extraction is diffed
    against what the *model* said before, not against a reviewer's edits."""

    __tablename__ = "capability_baselines"

    capability_id: Mapped[str] = mapped_column(
        ForeignKey("capabilities.id", ondelete="CASCADE"), primary_key=True
    )
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("extraction_runs.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
