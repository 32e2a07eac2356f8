"""review: append-only review events, re-extraction proposals, extraction baselines

Revision ID: 0003
Revises: 0002

Existing capabilities get a baseline equal to their current text, so the next re-extraction
is diffed against it.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIELDS = ("name", "category", "description", "unique_line", "vs_alternatives")


def upgrade() -> None:
    op.create_table(
        "review_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("capability_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("system", sa.Boolean(), nullable=False),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["capability_id"], ["capabilities.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["extraction_runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("review_events", schema=None) as batch_op:
        batch_op.create_index("ix_review_events_capability", ["capability_id", "id"], unique=False)

    op.create_table(
        "capability_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("capability_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("previous_status", sa.String(length=20), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["capability_id"], ["capabilities.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["extraction_runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("capability_proposals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_capability_proposals_open", ["capability_id", "state"], unique=False
        )

    baselines = op.create_table(
        "capability_baselines",
        sa.Column("capability_id", sa.String(length=40), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["capability_id"], ["capabilities.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["extraction_runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("capability_id"),
    )
    caps = sa.table(
        "capabilities", sa.column("id"), sa.column("last_run_id"), *map(sa.column, FIELDS)
    )
    now = datetime.now(UTC)
    rows = op.get_bind().execute(sa.select(caps)).mappings().all()
    if rows:
        op.bulk_insert(
            baselines,
            [
                {
                    "capability_id": r["id"],
                    "fields": {("unique" if f == "unique_line" else f): r[f] for f in FIELDS},
                    "run_id": r["last_run_id"],
                    "updated_at": now,
                }
                for r in rows
            ],
        )


def downgrade() -> None:
    op.drop_table("capability_baselines")
    with op.batch_alter_table("capability_proposals", schema=None) as batch_op:
        batch_op.drop_index("ix_capability_proposals_open")
    op.drop_table("capability_proposals")
    with op.batch_alter_table("review_events", schema=None) as batch_op:
        batch_op.drop_index("ix_review_events_capability")
    op.drop_table("review_events")
