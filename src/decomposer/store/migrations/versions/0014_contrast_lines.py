"""contrast lines (model-written vs alternatives), their batches, and rejection causes per call

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contrast_lines",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "capability_id",
            sa.String(40),
            sa.ForeignKey("capabilities.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("model_text", sa.Text(), nullable=False),
        sa.Column("citations", sa.JSON(), nullable=False),
        sa.Column("counterparts", sa.JSON(), nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt_version", sa.String(50), nullable=False),
        sa.Column("rejections", sa.JSON(), nullable=False),
        sa.Column("edited", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.String(200), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_contrast_lines_capability", "contrast_lines", ["capability_id", "id"])
    op.create_index("ix_contrast_lines_input_hash", "contrast_lines", ["input_hash"])
    with op.batch_alter_table("llm_calls") as batch:
        batch.add_column(sa.Column("rejections", sa.JSON(), nullable=True))
    op.create_table(
        "contrast_batches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("batch_id", sa.String(200), nullable=False, unique=True),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(50), nullable=False),
        sa.Column("base_url", sa.String(500), nullable=True),
        sa.Column("prompt_version", sa.String(50), nullable=False),
        sa.Column("input_file_id", sa.String(200), nullable=False),
        sa.Column("output_file_id", sa.String(200), nullable=True),
        sa.Column("error_file_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("refused", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("contrast_batches")
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_column("rejections")
    op.drop_index("ix_contrast_lines_input_hash", table_name="contrast_lines")
    op.drop_index("ix_contrast_lines_capability", table_name="contrast_lines")
    op.drop_table("contrast_lines")
