"""ORM table for stored eval runs (`decomposer eval`): settings, golden file and scores as JSON.

An eval extracts into a scratch store that is thrown away; only this run record is kept in the
user's store, so runs can be listed and compared later. Schema owned by migration 0013.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from decomposer.store.models import Base


class EvalRunRecord(Base):
    """One `decomposer eval` run: what was run (settings, code, golden file) and its scores."""

    __tablename__ = "eval_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    golden_name: Mapped[str] = mapped_column(String(200))
    golden_path: Mapped[str] = mapped_column(String(2000))
    golden_sha256: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(50))
    base_url: Mapped[str | None] = mapped_column(String(500))
    prompt_version: Mapped[str] = mapped_column(String(50))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    chunk_tokens: Mapped[int] = mapped_column(Integer)
    pack_tokens: Mapped[int] = mapped_column(Integer)
    answers: Mapped[str] = mapped_column(String(20))
    code_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
