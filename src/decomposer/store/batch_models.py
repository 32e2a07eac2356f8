"""ORM table for provider batch jobs (``extract --batch``). The schema is owned by migration 0005.

One row per provider batch. A run's jobs point at their batch through ``jobs.batch_id`` (the
provider's id, as here in ``batch_id``) while the batch holds them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from decomposer.store.models import Base


class BatchRecord(Base):
    """A batch submitted to a provider's Batch API for some of a run's jobs.

    ``status`` is the provider's own word (Mistral ``QUEUED`` … ``CANCELLED``, OpenAI
    ``validating`` … ``cancelled``), refreshed by ``batch status``. ``collected_at`` is set once
    its results were stored and its unfinished jobs given back to the queue.
    """

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_run", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(200), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("extraction_runs.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    input_file_id: Mapped[str] = mapped_column(String(200))
    output_file_id: Mapped[str | None] = mapped_column(String(200))
    error_file_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(40))
    requests: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    requeued: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    collected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
