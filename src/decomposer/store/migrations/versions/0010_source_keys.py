"""documents.source_key: a document's stable identity in its tool, so a moved folder matches

Existing rows get a key computed from the absolute path they were stored with: URLs keep the
URL; a file gets ``<parent folder name>/<file name>``, the key a new ingest of that folder
gives it (a file that was ingested on its own gets its file name on its next ingest: the
ingest finds it by its old absolute path and updates the key). Where two files of one tool
would get the same key, the later ones keep their absolute path as their key. Chunk ids of
existing documents stay as they are until the document is re-chunked, so cached answers stay
valid.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from pathlib import PurePosixPath

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def key_for(source: str) -> str:
    if source.startswith(("http://", "https://")):
        return source
    path = PurePosixPath(source)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("source_key", sa.String(2000), nullable=True))
    documents = sa.table(
        "documents",
        sa.column("id", sa.Integer),
        sa.column("tool_id", sa.Integer),
        sa.column("source", sa.String),
        sa.column("source_key", sa.String),
    )
    conn = op.get_bind()
    taken: set[tuple[int, str]] = set()
    rows = conn.execute(
        sa.select(documents.c.id, documents.c.tool_id, documents.c.source).order_by(documents.c.id)
    )
    for doc_id, tool_id, source in list(rows):
        key = key_for(source)
        if (tool_id, key) in taken:
            key = source
        taken.add((tool_id, key))
        conn.execute(documents.update().where(documents.c.id == doc_id).values(source_key=key))
    with op.batch_alter_table("documents") as batch:
        batch.alter_column("source_key", existing_type=sa.String(2000), nullable=False)
        batch.create_unique_constraint("uq_documents_tool_id_source_key", ["tool_id", "source_key"])


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_constraint("uq_documents_tool_id_source_key", type_="unique")
        batch.drop_column("source_key")
