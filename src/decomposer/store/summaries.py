"""The tool list behind ``decomposer tools``: one SQL query, run by SQLAlchemy or by ``lite``.

The query is plain SQL shared by both drivers so the fast SQLite path and the full path cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from decomposer.core.vocab import ToolType
from decomposer.store.lite import read_only

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LIST_TOOLS_SQL = """
SELECT t.slug, t.name, t.type, t.vendor, t.homepage,
       (SELECT count(*) FROM documents d WHERE d.tool_id = t.id),
       (SELECT count(*) FROM capabilities c WHERE c.tool_id = t.id)
FROM tools t
ORDER BY t.slug
"""


class ToolSummary(BaseModel):
    """One row of ``decomposer tools``: a tool with its document and capability counts."""

    model_config = ConfigDict(frozen=True)

    slug: str
    name: str
    type: ToolType | None
    vendor: str | None
    homepage: str | None
    documents: int
    capabilities: int


def summaries(rows: Iterable[Sequence[object]]) -> list[ToolSummary]:
    fields = list(ToolSummary.model_fields)
    return [ToolSummary.model_validate(dict(zip(fields, row, strict=True))) for row in rows]


def tool_summaries(url: str) -> list[ToolSummary]:
    """Every tool of the store at ``url``; a current SQLite store is read without SQLAlchemy."""
    with read_only(url) as conn:
        if conn is not None:
            return summaries(conn.execute(LIST_TOOLS_SQL))
    from decomposer.store.engine import open_store

    store = open_store(url)
    try:
        with store.transaction() as session:
            return list_tools(session)
    finally:
        store.dispose()


def list_tools(session: Session) -> list[ToolSummary]:
    from sqlalchemy import text

    return summaries(session.execute(text(LIST_TOOLS_SQL)))
