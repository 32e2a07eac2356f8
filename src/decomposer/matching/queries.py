"""Search-query files: parsing and checking them, and storing their queries and counts.

A query file is either plain text (one query per line) or CSV whose first line is a header
naming the column ``query`` and, optionally, ``count`` and ``date`` (YYYY-MM-DD), in any order.
The whole file is checked first; a bad line is an error naming its line number, and then nothing
is imported. Re-importing a file sets (does not add) the counts it lists, so importing the same
file twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from decomposer.core.errors import InputError
from decomposer.store.match_models import SearchQuery, SearchQueryCount

MAX_QUERY_CHARS = 1000
MAX_QUERY_COUNT = 1_000_000_000
"""Searches per query and day: far above any real log, and within the store's 32-bit column."""
CSV_COLUMNS = ("query", "count", "date")
_HEADER_CELL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,39}")


@dataclass(frozen=True)
class QueryLine:
    line: int
    text: str
    count: int = 1
    day: str = ""  # YYYY-MM-DD, or "" when the file gives no date


def parse_queries(path: Path) -> list[QueryLine]:
    """Read and check a query file; any bad line fails the whole file (``FILE:LINE: why``)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read query file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text") from None
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    header = [c.strip().lower() for c in next(csv.reader([first]))] if first else []
    if "query" not in header:
        _refuse_unknown_header(path, lines, header)
    rows = _parse_csv(path, text) if "query" in header else _parse_plain(path, lines)
    if not rows:
        raise InputError(f"{path}: no queries in the file")
    totals: dict[tuple[str, str], int] = {}
    for row in rows:
        totals[(row.text, row.day)] = total = totals.get((row.text, row.day), 0) + row.count
        if total > MAX_QUERY_COUNT:
            raise InputError(
                f"{path}:{row.line}: counts for this query add up to more than {MAX_QUERY_COUNT}"
            )
    return rows


def _refuse_unknown_header(path: Path, lines: list[str], header: list[str]) -> None:
    """A first line of bare column names without ``query`` is a CSV header we do not know.

    Plain query files may contain commas, so only a line of identifiers that is either naming
    a known column or matched by the field count of every other line counts as a header.
    """
    if len(header) < 2 or not all(_HEADER_CELL.fullmatch(cell) for cell in header):
        return
    body = [ln for ln in lines if ln.strip()][1:]
    consistent = all(len(next(csv.reader([ln]), [])) == len(header) for ln in body)
    if consistent or set(header) & set(CSV_COLUMNS):
        number = next(n for n, ln in enumerate(lines, 1) if ln.strip())
        raise InputError(
            f"{path}:{number}: CSV header {','.join(header)} has no 'query' column",
            hint="the CSV columns are query, count and date; a plain file has one query a line",
        )


def _check_text(path: Path, number: int, text: str) -> str:
    if any(ord(ch) < 32 and ch not in "\t" for ch in text) or "\x7f" in text:
        raise InputError(f"{path}:{number}: control characters in the query")
    flat = " ".join(text.split())
    if len(flat) > MAX_QUERY_CHARS:
        raise InputError(
            f"{path}:{number}: query is {len(flat)} characters long (at most {MAX_QUERY_CHARS})"
        )
    return flat


def _parse_plain(path: Path, lines: list[str]) -> list[QueryLine]:
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        out.append(QueryLine(number, _check_text(path, number, line)))
    return out


def _parse_csv(path: Path, text: str) -> list[QueryLine]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [c.strip().lower() for c in next(reader)]
    except csv.Error as exc:
        raise InputError(f"{path}:1: bad CSV header ({exc})") from None
    for name in header:
        if name not in CSV_COLUMNS:
            raise InputError(
                f"{path}:{reader.line_num}: unknown column {name!r}",
                hint="the CSV columns are query, count and date (count and date optional)",
            )
    if len(set(header)) != len(header):
        raise InputError(f"{path}:{reader.line_num}: a column is named twice")
    out: list[QueryLine] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"{path}:{reader.line_num}: bad CSV ({exc})") from None
        number = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputError(
                f"{path}:{number}: expected {len(header)} fields ({', '.join(header)}), "
                f"got {len(row)}"
            )
        cells = dict(zip(header, row, strict=True))
        query = _check_text(path, number, cells["query"])
        if not query:
            raise InputError(f"{path}:{number}: empty query")
        out.append(
            QueryLine(
                number,
                query,
                _parse_count(path, number, cells.get("count", "")),
                _parse_day(path, number, cells.get("date", "")),
            )
        )
    return out


def _parse_count(path: Path, number: int, raw: str) -> int:
    raw = raw.strip()
    if not raw:
        return 1
    digits = raw.lstrip("0")
    if not (raw.isascii() and raw.isdigit()) or not digits:
        raise InputError(f"{path}:{number}: count must be a whole number ≥ 1, got {raw[:30]!r}")
    if len(digits) > len(str(MAX_QUERY_COUNT)) or int(digits) > MAX_QUERY_COUNT:
        shown = digits if len(digits) <= 30 else f"of {len(digits)} digits"
        raise InputError(f"{path}:{number}: count {shown} is above the maximum {MAX_QUERY_COUNT}")
    return int(digits)


def _parse_day(path: Path, number: int, raw: str) -> str:
    raw = raw.strip()
    if not raw:
        return ""
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise InputError(f"{path}:{number}: date must be YYYY-MM-DD, got {raw!r}") from None


@dataclass
class QueryImport:
    queries: int = 0  # distinct query texts in the file
    searches: int = 0  # the file's counts, summed
    added: int = 0  # query texts new to the store
    counts_changed: int = 0
    counts_unchanged: int = 0


def import_queries(
    session: Session, lines: Sequence[QueryLine], *, now: datetime, replace: bool = False
) -> QueryImport:
    """Store parsed queries; ``replace`` first deletes every stored query (and its edges)."""
    if replace:
        session.execute(delete(SearchQuery))
    totals: dict[tuple[str, str], int] = {}
    for q in lines:
        totals[(q.text, q.day)] = totals.get((q.text, q.day), 0) + q.count
    report = QueryImport(queries=len({t for t, _ in totals}), searches=sum(totals.values()))
    ids: dict[str, int] = {
        text: qid for text, qid in session.execute(select(SearchQuery.text, SearchQuery.id))
    }
    for text in dict.fromkeys(t for t, _ in totals):
        if text not in ids:
            row = SearchQuery(text=text, created_at=now)
            session.add(row)
            session.flush()
            ids[text] = row.id
            report.added += 1
    existing = {(c.query_id, c.day): c for c in session.scalars(select(SearchQueryCount))}
    for (text, day), count in totals.items():
        stored = existing.get((ids[text], day))
        if stored is None:
            session.add(SearchQueryCount(query_id=ids[text], day=day, count=count))
            report.counts_changed += 1
        elif stored.count != count:
            stored.count = count
            report.counts_changed += 1
        else:
            report.counts_unchanged += 1
    return report
