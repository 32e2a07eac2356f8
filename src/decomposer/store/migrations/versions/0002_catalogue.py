"""tool catalogue: pricing, categories and score signals per tool

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalogue_entries",
        sa.Column("tool_id", sa.Integer(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("pricing_model", sa.String(length=50), nullable=True),
        sa.Column("free_tier", sa.Boolean(), nullable=True),
        sa.Column("price_amount", sa.String(length=40), nullable=True),
        sa.Column("price_currency", sa.String(length=10), nullable=True),
        sa.Column("price_unit", sa.String(length=100), nullable=True),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=2000), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tool_id"], ["tools.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tool_id"),
    )


def downgrade() -> None:
    op.drop_table("catalogue_entries")
