"""Persistence: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema owned by Alembic.

``Store`` and ``open_store`` load lazily, so a submodule that needs no SQLAlchemy (``lite``,
``summaries``) can be imported without paying for the ORM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decomposer.store.engine import Store, open_store

__all__ = ["Store", "open_store"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from decomposer.store import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
