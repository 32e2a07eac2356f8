"""Persistence: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema owned by Alembic."""

from decomposer.store.engine import Store, open_store

__all__ = ["Store", "open_store"]
