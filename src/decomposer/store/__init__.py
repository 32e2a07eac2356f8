"""Persistence: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema owned by Alembic."""

from decomposer.store import batch_models as _batch_models  # noqa: F401
from decomposer.store import catalogue_models as _catalogue_models  # noqa: F401
from decomposer.store import contrast_models as _contrast_models  # noqa: F401
from decomposer.store import match_models as _match_models  # noqa: F401
from decomposer.store import review_models as _review_models  # noqa: F401
from decomposer.store import tokens as _tokens  # noqa: F401
from decomposer.store.engine import Store, open_store

__all__ = ["Store", "open_store"]
