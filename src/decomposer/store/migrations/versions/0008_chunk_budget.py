"""the chunk budget each document was chunked with, so a new --chunk-tokens re-chunks it

Existing rows get NULL: their budget is unknown and is taken to be the default (6000), the
budget every CLI ingest used unless told otherwise, so re-ingesting them stays a no-op.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("chunk_budget", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("chunk_budget")
