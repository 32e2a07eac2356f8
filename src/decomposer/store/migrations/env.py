"""Alembic environment: runs on the connection decomposer hands over, or on the configured URL."""

from alembic import context
from sqlalchemy import create_engine

from decomposer.store import batch_models as _batch_models  # noqa: F401
from decomposer.store import catalogue_models as _catalogue_models  # noqa: F401
from decomposer.store import contrast_models as _contrast_models  # noqa: F401
from decomposer.store import eval_models as _eval_models  # noqa: F401
from decomposer.store import match_models as _match_models  # noqa: F401
from decomposer.store import review_models as _review_models  # noqa: F401
from decomposer.store import tokens as _tokens  # noqa: F401
from decomposer.store.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
