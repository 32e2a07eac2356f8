"""ORM table for the tool catalogue (``decomposer tool import``); schema owned by migration 0002."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from decomposer.store.models import Base


class CatalogueEntry(Base):
    """What the catalogue file declares about one tool: pricing, categories and score signals.

    ``price_amount`` is a decimal *string* ("0.10") so prices survive exactly, never as floats.
    ``signals`` maps a signal name (see ``decomposer.catalog.catalogue.SIGNALS``) to its value.
    """

    __tablename__ = "catalogue_entries"

    tool_id: Mapped[int] = mapped_column(
        ForeignKey("tools.id", ondelete="CASCADE"), primary_key=True
    )
    categories: Mapped[list[str]] = mapped_column(JSON)
    pricing_model: Mapped[str | None] = mapped_column(String(50))
    free_tier: Mapped[bool | None] = mapped_column(Boolean)
    price_amount: Mapped[str | None] = mapped_column(String(40))
    price_currency: Mapped[str | None] = mapped_column(String(10))
    price_unit: Mapped[str | None] = mapped_column(String(100))
    signals: Mapped[dict[str, object]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(2000))
    content_hash: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revision: Mapped[int] = mapped_column(Integer, default=1)
