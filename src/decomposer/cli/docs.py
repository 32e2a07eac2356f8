"""CLI commands for stored documents: ``doc list``, ``doc remove``, the pruning behind
``ingest --prune``, and ``tool remove``.

A removed document's capabilities are flagged ``vanished`` (with a proposal remembering their
status, as after a run that no longer finds them), never deleted: reviewed ones keep their
history and a person decides. Capabilities still backed by another document are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from decomposer.cli import common
from decomposer.core.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session

    from decomposer.store.models import Document

doc_app = typer.Typer(help="List and remove a tool's stored documents.", no_args_is_help=True)
ToolArg = Annotated[str, typer.Argument(help="Tool slug.")]


def register(app: typer.Typer) -> None:
    app.add_typer(doc_app, name="doc")


def _rows(session: Session, tool_id: int) -> list[Document]:
    from sqlalchemy import select

    from decomposer.store.models import Document

    query = select(Document).where(Document.tool_id == tool_id).order_by(Document.source_key)
    return list(session.scalars(query))


def remove_documents(session: Session, docs: Sequence[Document], now: datetime) -> dict[str, Any]:
    """Delete ``docs`` (their chunks go with them) and flag the capabilities that only they
    backed as vanished. One transaction: the caller's."""
    from sqlalchemy import delete, update

    from decomposer.review.diff import vanish_unbacked
    from decomposer.store.models import Document, Evidence

    ids = [d.id for d in docs]
    keys = [d.source_key for d in docs]
    note = f"its document(s) were removed: {', '.join(keys)}"
    vanished = vanish_unbacked(session, ids, now, note) if ids else []
    session.execute(update(Evidence).where(Evidence.document_id.in_(ids)).values(document_id=None))
    session.execute(delete(Document).where(Document.id.in_(ids)))
    session.expire_all()
    return {
        "removed": [{"id": i, "key": k} for i, k in zip(ids, keys, strict=True)],
        "vanished": vanished,
    }


def prune(session: Session, tool_slug: str, kept: Sequence[str], now: datetime) -> dict[str, Any]:
    """Remove the tool's documents whose key is not in ``kept`` (``ingest --prune``)."""
    from decomposer.store.tools import get_tool

    tool = get_tool(session, tool_slug)
    gone = [d for d in _rows(session, tool.id) if d.source_key not in set(kept)]
    return remove_documents(session, gone, now)


def print_removal(result: dict[str, Any]) -> None:
    out = common.out()
    for doc in result["removed"]:
        out.print(f"removed document {doc['id']}: {doc['key']}", markup=False)
    out.print(
        f"{len(result['removed'])} documents removed; {len(result['vanished'])} capabilities "
        "flagged vanished"
        + (" — review them with `decomposer review TOOL`" if result["vanished"] else ""),
        markup=False,
    )


@doc_app.command("list")
def list_cmd(
    ctx: typer.Context,
    tool: ToolArg,
    as_json: common.JsonOpt = False,
    nl: common.NlOpt = False,
) -> None:
    """List a tool's documents: id, source key (what identifies it), where it was last read."""
    from sqlalchemy import func, select

    from decomposer.store.models import Chunk
    from decomposer.store.tools import get_tool

    with common.env(ctx).store() as store, store.transaction() as session:
        tool_id = get_tool(session, tool).id
        counted = select(Chunk.document_id, func.count()).group_by(Chunk.document_id)
        counts = {doc_id: n for doc_id, n in session.execute(counted)}
        rows = [
            {
                "id": d.id,
                "key": d.source_key,
                "source": d.source,
                "title": d.title,
                "chunks": int(counts.get(d.id, 0)),
                "updated_at": d.updated_at.isoformat(),
                "missing_since": d.missing_since.isoformat() if d.missing_since else None,
            }
            for d in _rows(session, tool_id)
        ]
    if common.print_rows(rows, as_json, nl):
        return
    from rich.table import Table

    table = Table("id", "key", "chunks", "title", box=None, pad_edge=False)
    for r in rows:
        title = f"{r['title']} (missing)" if r["missing_since"] else str(r["title"])
        table.add_row(str(r["id"]), str(r["key"]), str(r["chunks"]), title)
    common.out().print(table)


@doc_app.command("remove")
def remove_cmd(
    ctx: typer.Context,
    tool: ToolArg,
    documents: Annotated[list[str], typer.Argument(help="Document ids or source keys.")],
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Remove documents and their chunks; capabilities only they backed are flagged vanished."""
    from decomposer.core.clock import utcnow
    from decomposer.store.tools import get_tool

    with common.env(ctx).store() as store, store.transaction() as session:
        stored = _rows(session, get_tool(session, tool).id)
        chosen: list[Document] = []
        for wanted in documents:
            found = [d for d in stored if wanted in (str(d.id), d.source_key)]
            if not found:
                raise NotFoundError(
                    f"{tool} has no document {wanted!r}", hint=f"see `decomposer doc list {tool}`"
                )
            chosen.extend(d for d in found if d not in chosen)
        result = remove_documents(session, chosen, utcnow())
    if as_json:
        common.print_json({"action": "doc remove", "tool": tool, **result})
        return
    print_removal(result)


def tool_remove(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Tool slug.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Also when some of its capabilities have been reviewed."),
    ] = False,
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Delete a tool with its documents, runs, capabilities and their history."""
    from sqlalchemy import func, select

    from decomposer.core.vocab import REVIEWED_STATUSES
    from decomposer.store.models import Capability
    from decomposer.store.tools import get_tool, remove_tool

    with common.env(ctx).store() as store, store.transaction() as session:
        tool_id = get_tool(session, slug).id
        reviewed = session.scalar(
            select(func.count()).where(
                Capability.tool_id == tool_id, Capability.status.in_(REVIEWED_STATUSES)
            )
        )
        if reviewed and not force:
            raise InputError(
                f"{slug} has {reviewed} reviewed capabilities; removing it deletes their history",
                hint="pass --force to remove it anyway",
            )
        result = remove_tool(session, slug)
    if as_json:
        common.print_json({"action": "tool remove", **result})
        return
    common.out().print(
        f"removed tool {slug}: {result['documents']} documents, {result['capabilities']} "
        "capabilities",
        markup=False,
    )
