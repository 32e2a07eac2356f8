"""Export and import: every table of a store as JSON Lines, restorable into an empty store.

The format is generic over the ORM metadata: a header line, then one object per row,
``{"kind": TABLE, "row": {COLUMN: VALUE}}``, tables in foreign-key order
(``metadata.sorted_tables``) and rows in primary key order, values encoded by column type. A
new table or column is therefore exported and imported without a change here; tests fail when
a table is neither exported nor listed in ``EXCLUDED``. Ids are kept, so an export of the
restored store is identical to the first.

With ``tools``, only rows reachable from those tools through foreign keys are written (a row is
kept when every non-null key to a tool-scoped table points at a kept row); tables no foreign key
ties to a tool (search queries, match runs, embeddings, the answer journal) are shared and
written whole, except the answer cache, which follows its soft link (``SOFT_LINKS``).

Import reads and checks the whole file before it writes, then inserts everything in one
transaction; a bad line is one error naming the line, and nothing is written.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    exists,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, StatementError

from decomposer.core.errors import InputError, NotFoundError
from decomposer.store.engine import Store, stored_revision
from decomposer.store.models import Base

FORMAT = 1
"""Version of the file layout; an import refuses any other."""
HEADER = "header"
EXCLUDED: dict[str, str] = {
    "api_tokens": "credentials of the old store: create new tokens on the restored one",
    "store_info": "facts about the store file itself (which version migrated it), not data",
}
"""Tables never exported, and why."""
SOFT_LINKS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "llm_cache": (
        ("request_hash", "jobs", "request_hash"),
        ("request_hash", "llm_calls", "request_hash"),
    ),
}
"""With ``--tool``: a row of the key table is kept when its column matches a kept row of
another table (no foreign key says so: the cache is keyed by request hash)."""
BATCH = 500
"""Rows per INSERT statement on import."""
STREAM_ROWS = 1000
"""Rows fetched at a time on export, so a large table is never held in memory whole."""


def tables() -> list[Table]:
    """The exported tables in the order they are written and restored: foreign-key order, soft
    linked tables last (no foreign key points at them)."""
    ordered = [t for t in Base.metadata.sorted_tables if t.name not in EXCLUDED]
    return [t for t in ordered if t.name not in SOFT_LINKS] + [
        t for t in ordered if t.name in SOFT_LINKS
    ]


@dataclass
class Transfer:
    """What an export wrote or an import restored: rows per table, and notes for the user."""

    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def encode(column: Column[Any], value: Any) -> Any:
    """A column value as JSON: datetimes in ISO 8601, bytes in base64, the rest as they are."""
    if value is None:
        return None
    if isinstance(column.type, DateTime):
        return value.isoformat()
    if isinstance(column.type, LargeBinary):
        return base64.b64encode(value).decode("ascii")
    return value


def decode(column: Column[Any], value: Any) -> Any:
    """The inverse of ``encode``, refusing a value of the wrong type with ``ValueError``."""
    kind = column.type
    if isinstance(kind, JSON):
        return value  # None is JSON null, which a JSON column stores whatever its nullability
    if value is None:
        if not column.nullable:
            raise ValueError("may not be null")
        return None
    if isinstance(kind, DateTime):
        return datetime.fromisoformat(_typed(value, str, "an ISO 8601 date-time"))
    if isinstance(kind, LargeBinary):
        return base64.b64decode(_typed(value, str, "base64 text"), validate=True)
    if isinstance(kind, Boolean):
        return _typed(value, bool, "true or false")
    if isinstance(kind, Integer):
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise ValueError("expected a 64-bit integer")
        return value
    if isinstance(kind, Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        return float(value)
    if isinstance(kind, String):
        return _typed(value, str, "a string")
    raise ValueError(f"unsupported column type {kind}")


def _typed(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"expected {what}")
    return value


def export_store(
    store: Store, out: IO[str], *, version: str, tools: Sequence[str] | None = None
) -> Transfer:
    """Write the store (or ``tools``' rows) to ``out`` from one consistent read."""
    result = Transfer()
    with _snapshot(store) as conn:
        tool_ids = _tool_ids(conn, tools) if tools else None
        header = {
            "kind": HEADER,
            "format": FORMAT,
            "decomposer": version,
            "revision": stored_revision(conn),
            "tools": sorted(tools) if tools else None,
            "excluded": sorted(EXCLUDED),
        }
        out.write(json.dumps(header, ensure_ascii=False) + "\n")
        scope = _Scope(tool_ids)
        for table in tables():
            count = 0
            query = select(table).order_by(*table.primary_key.columns)
            query = query.execution_options(yield_per=STREAM_ROWS)
            for row in conn.execute(query).mappings():
                if not scope.keep(table, row):
                    continue
                values = {c.name: encode(c, row[c.name]) for c in table.columns}
                line = {"kind": table.name, "row": values}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                count += 1
            result.rows[table.name] = count
    return result


class _snapshot:
    """A read-only connection whose reads all see one state of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Connection:
        conn = self.store.engine.connect()
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        self.conn = conn
        conn.begin()
        return conn

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


def _tool_ids(conn: Connection, slugs: Sequence[str]) -> set[int]:
    table = Base.metadata.tables["tools"]
    found = dict(
        conn.execute(select(table.c.slug, table.c.id).where(table.c.slug.in_(slugs))).all()
    )
    for slug in slugs:
        if slug not in found:
            raise NotFoundError(f"unknown tool {slug!r}", hint="see `decomposer tools`")
    return set(found.values())


class _Scope:
    """Which rows a ``--tool`` export keeps, decided table by table in export order."""

    def __init__(self, tool_ids: set[int] | None) -> None:
        self.tool_ids = tool_ids
        self.kept: dict[tuple[str, str], set[Any]] = {}
        self.scoped: set[str] = {"tools"}
        referenced = {
            (fk.column.table.name, fk.column.name) for t in tables() for fk in t.foreign_keys
        }
        referenced |= {(other, col) for links in SOFT_LINKS.values() for _, other, col in links}
        self.referenced = referenced

    def keep(self, table: Table, row: Any) -> bool:
        keep = self._decide(table, row)
        if keep:
            for name, col in self.referenced:
                if name == table.name:
                    self.kept.setdefault((name, col), set()).add(row[col])
        return keep

    def _decide(self, table: Table, row: Any) -> bool:
        if self.tool_ids is None:
            return True
        if table.name == "tools":
            return bool(row["id"] in self.tool_ids)
        if table.name in SOFT_LINKS:
            return any(
                row[col] in self.kept.get((other, other_col), set())
                for col, other, other_col in SOFT_LINKS[table.name]
            )
        links = [fk for fk in table.foreign_keys if fk.column.table.name in self.scoped]
        if not links:
            return True
        self.scoped.add(table.name)
        present = [fk for fk in links if row[fk.parent.name] is not None]
        return bool(present) and all(
            row[fk.parent.name] in self.kept.get((fk.column.table.name, fk.column.name), set())
            for fk in present
        )


@dataclass
class _Parsed:
    header: dict[str, Any]
    rows: dict[str, list[tuple[int, dict[str, Any]]]]


def parse(lines: Iterable[str]) -> _Parsed:
    """Read and check every line of an export; the first problem is one ``InputError`` naming
    its line. Nothing touches a store."""
    by_name = {t.name: t for t in tables()}
    header: dict[str, Any] | None = None
    rows: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    number = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        obj = _object(raw, number)
        kind = obj.pop("kind", None)
        if header is None:
            header = _header(obj, kind, number)
            continue
        if kind == HEADER:
            raise InputError(f"line {number}: a second header")
        if not isinstance(kind, str) or kind not in by_name:
            raise InputError(f"line {number}: unknown kind {kind!r}", hint=_kinds_hint(by_name))
        values = obj.get("row")
        if not isinstance(values, dict) or set(obj) != {"row"}:
            raise InputError(f'line {number}: expected {{"kind": TABLE, "row": {{...}}}}')
        rows.setdefault(kind, []).append((number, _row(by_name[kind], values, number)))
    if header is None:
        raise InputError("the file is empty: expected a decomposer export")
    return _Parsed(header, rows)


def _object(raw: str, number: int) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise InputError(f"line {number}: not valid JSON ({reason})") from None
    if not isinstance(obj, dict):
        raise InputError(f"line {number}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _header(obj: dict[str, Any], kind: Any, number: int) -> dict[str, Any]:
    if kind != HEADER:
        raise InputError(
            f"line {number}: expected the export header first, got kind {kind!r}",
            hint="is this a file written by `decomposer export`?",
        )
    if obj.get("format") != FORMAT:
        raise InputError(
            f"line {number}: export format {obj.get('format')!r} is not supported "
            f"(this decomposer reads format {FORMAT})"
        )
    return obj


def _kinds_hint(by_name: dict[str, Table]) -> str:
    return "kinds are the table names: " + ", ".join(sorted(by_name))


def _row(table: Table, obj: dict[str, Any], number: int) -> dict[str, Any]:
    unknown = sorted(set(obj) - set(table.columns.keys()))
    if unknown:
        raise InputError(f"line {number}: {table.name} has no column {unknown[0]!r}")
    row: dict[str, Any] = {}
    for column in table.columns:
        where = f"line {number}: {table.name}.{column.name}"
        if column.name not in obj:
            row[column.name] = _missing(column, where)
            continue
        try:
            row[column.name] = decode(column, obj[column.name])
        except (ValueError, TypeError) as exc:
            raise InputError(f"{where}: {exc}") from None
    return row


def _missing(column: Column[Any], where: str) -> Any:
    """A column an older export lacks: its default, else NULL where that is allowed."""
    default = column.default
    if default is not None and default.is_scalar:
        return getattr(default, "arg", None)
    if column.nullable and not column.primary_key:
        return None
    raise InputError(f"{where}: missing, and the column has no default")


def import_store(store: Store, lines: Iterable[str]) -> Transfer:
    """Restore an export into an empty store in one transaction, or refuse and write nothing.

    Rows go in by the batch; when the database refuses one, the transaction is rolled back and
    a second pass, row by row and rolled back too, finds the line to name."""
    parsed = parse(lines)
    result = Transfer()
    try:
        with store.engine.begin() as conn:
            _require_empty(conn)
            revision = stored_revision(conn)
            if parsed.header.get("revision") not in (None, revision):
                result.notes.append(
                    f"exported at schema revision {parsed.header.get('revision')}, restored "
                    f"into revision {revision}"
                )
            for table in tables():
                rows = parsed.rows.get(table.name, [])
                for start in range(0, len(rows), BATCH):
                    conn.execute(insert(table), [row for _, row in rows[start : start + BATCH]])
                result.rows[table.name] = len(rows)
            if conn.dialect.name == "postgresql":
                _reset_sequences(conn)
    except (DBAPIError, StatementError) as exc:
        raise _culprit(store, parsed, exc) from None
    return result


def _culprit(store: Store, parsed: _Parsed, first: Exception) -> InputError:
    """The line whose row the database refuses, found by inserting one row at a time in a
    transaction that is rolled back."""
    with store.engine.connect() as conn:
        conn.begin()
        try:
            for table in tables():
                for number, row in parsed.rows.get(table.name, []):
                    try:
                        conn.execute(insert(table), [row])
                    except (DBAPIError, StatementError) as exc:
                        return InputError(
                            f"line {number}: cannot restore this {table.name} row ({_reason(exc)})"
                        )
        finally:
            conn.rollback()
    return InputError(f"cannot restore the export ({_reason(first)})")


def _require_empty(conn: Connection) -> None:
    for table in tables():
        if conn.execute(select(exists().select_from(table))).scalar():
            raise InputError(
                f"the store is not empty ({table.name} has rows): import restores into an "
                "empty store only",
                hint="use a new --home or DECOMPOSER_DATABASE_URL",
            )


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def _reset_sequences(conn: Connection) -> None:
    """Explicit ids do not advance PostgreSQL's sequences: move each past the largest id."""
    for table in tables():
        (pk,) = table.primary_key.columns if len(table.primary_key.columns) == 1 else (None,)
        if pk is None or not isinstance(pk.type, Integer) or pk.autoincrement is False:
            continue
        top = conn.execute(select(func.max(pk))).scalar()
        if top is None:
            continue
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence(:t, :c), :v)"),
            {"t": table.name, "c": pk.name, "v": top},
        )


def read_lines(stream: IO[bytes]) -> Iterator[str]:
    """The lines of an export file as text; a line that is not UTF-8 is refused by number."""
    for number, raw in enumerate(stream, 1):
        try:
            yield raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError(f"line {number}: not UTF-8 text") from None
