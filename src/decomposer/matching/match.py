"""The match graph: user search queries -> the capabilities that answer them -> Times Matched.

- ``parse_queries`` / ``import_queries``: a query file is either plain text (one query per
  line) or CSV whose first line is a header naming the column ``query`` and, optionally,
  ``count`` and ``date`` (YYYY-MM-DD), in any order. The whole file is checked first; a bad
  line is an error naming its line number, and then nothing is imported. Re-importing a file
  sets (does not add) the counts it lists, so importing the same file twice changes nothing.
- ``run_match``: every query is matched to its top-k capabilities over all tools (every
  capability that is not rejected or vanished), with the chosen embedder; the edges
  ``query -> capability (rank, score)`` replace the previous run's, in one transaction.
- ``times_matched``: per tool, the number of searches (query counts summed over days) whose
  top-k hits include at least one of its capabilities scoring at least the run's threshold.
  Each query counts at most once per tool. It feeds the Match Graph sub-score (score.py).
- ``explain``: the queries that matched a tool, with the capability hit, rank, score and the
  word stems query and capability share. ``similar``: the tools with the most shared
  capabilities (``align.align``, the same pairing as the comparison page).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from decomposer.core.errors import InputError
from decomposer.core.vocab import LIVE_STATUSES as LIVE
from decomposer.core.vocab import MATCHES_PER_QUERY
from decomposer.matching.align import align, top_k
from decomposer.matching.embed import Embedder, Tokenizer, capability_text, shared_terms
from decomposer.store import Store
from decomposer.store.match_models import MatchEdge, MatchRun, SearchQuery, SearchQueryCount
from decomposer.store.models import Capability, Tool
from decomposer.store.tools import get_tool

MAX_QUERY_CHARS = 1000
MAX_QUERY_COUNT = 1_000_000_000
"""Searches per query and day: far above any real log, and within the store's 32-bit column."""
CSV_COLUMNS = ("query", "count", "date")
_HEADER_CELL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,39}")


# --- importing queries ---------------------------------------------------------------------------


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


# --- running the match ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveCapability:
    id: str
    tool_id: int
    tool: str
    name: str
    text: str


def live_capabilities(session: Session) -> list[LiveCapability]:
    rows = session.execute(
        select(
            Capability.id,
            Capability.tool_id,
            Tool.slug,
            Capability.name,
            Capability.description,
            Capability.unique,
        )
        .join(Tool, Tool.id == Capability.tool_id)
        .where(Capability.status.in_(LIVE))
        .order_by(Tool.slug, Capability.id)
    )
    return [
        LiveCapability(cid, tid, slug, name, capability_text(name, desc, uniq))
        for cid, tid, slug, name, desc, uniq in rows
    ]


def query_counts(session: Session) -> dict[int, int]:
    """Query id -> searches, summed over days."""
    rows = session.execute(
        select(SearchQueryCount.query_id, func.sum(SearchQueryCount.count)).group_by(
            SearchQueryCount.query_id
        )
    )
    return {qid: int(total or 0) for qid, total in rows}


@dataclass
class MatchReport:
    run_id: int
    model: str
    top_k: int
    threshold: float
    queries: int
    capabilities: int
    edges: int
    matched_queries: int
    times_matched: dict[str, int]
    seconds: float
    digest: str


def run_match(
    store: Store,
    embedder: Embedder,
    *,
    now: datetime,
    k: int = MATCHES_PER_QUERY,
    threshold: float | None = None,
) -> MatchReport:
    """Match every stored query to its top-k capabilities and store the graph (one transaction).

    Embedding happens outside the write transaction (a provider may be slow); the graph is then
    written at once, so a failed run leaves the previous graph in place.
    """
    if k < 1:
        raise InputError("--top-k must be at least 1")
    cut = embedder.thresholds.match if threshold is None else threshold
    if not 0.0 <= cut <= 1.0:
        raise InputError(f"--threshold must be between 0 and 1, got {cut}")
    started = time.perf_counter()
    with store.transaction() as session:
        queries = session.execute(
            select(SearchQuery.id, SearchQuery.text).order_by(SearchQuery.id)
        ).all()
        caps = live_capabilities(session)
    if not queries:
        raise InputError(
            "no search queries to match", hint="import some with `decomposer match import-queries`"
        )
    if not caps:
        raise InputError("no capabilities to match against", hint="run `decomposer extract` first")
    corpus, query_vecs = embedder.encode([c.text for c in caps], [q.text for q in queries])
    indices, scores = top_k(corpus, query_vecs, k)
    edges: list[MatchEdge] = []
    digest = hashlib.sha256(f"{embedder.model}|{k}|{cut:.6f}".encode())
    for qi, (qid, text) in enumerate(queries):
        for rank, (ci, score) in enumerate(zip(indices[qi], scores[qi], strict=True), 1):
            if ci < 0:
                break
            cap = caps[int(ci)]
            value = round(float(score), 6)
            edges.append(
                MatchEdge(
                    query_id=qid,
                    rank=rank,
                    capability_id=cap.id,
                    tool_id=cap.tool_id,
                    score=value,
                )
            )
            digest.update(f"{text}\0{cap.id}\0{rank}\0{value}\n".encode())
    with store.transaction() as session:
        session.execute(delete(MatchEdge))
        run = MatchRun(
            model=embedder.model,
            top_k=k,
            threshold=cut,
            queries=len(queries),
            capabilities=len(caps),
            edges=len(edges),
            digest=digest.hexdigest(),
            status="succeeded",
            started_at=now,
            finished_at=now,
        )
        session.add(run)
        session.flush()
        for edge in edges:
            edge.run_id = run.id
        session.add_all(edges)
        session.flush()
        matched = times_matched(session)
        matched_queries = len({e.query_id for e in edges if e.score >= cut})
        run_id = run.id
    return MatchReport(
        run_id=run_id,
        model=embedder.model,
        top_k=k,
        threshold=cut,
        queries=len(queries),
        capabilities=len(caps),
        edges=len(edges),
        matched_queries=matched_queries,
        times_matched=matched,
        seconds=time.perf_counter() - started,
        digest=digest.hexdigest(),
    )


def latest_run(session: Session) -> MatchRun | None:
    return session.scalars(
        select(MatchRun).where(MatchRun.status == "succeeded").order_by(MatchRun.id.desc()).limit(1)
    ).first()


def times_matched(session: Session) -> dict[str, int]:
    """Tool slug -> Times Matched from the newest run (tools never matched are left out)."""
    run = latest_run(session)
    if run is None:
        return {}
    pairs = session.execute(
        select(MatchEdge.query_id, Tool.slug)
        .join(Capability, Capability.id == MatchEdge.capability_id)
        .join(Tool, Tool.id == MatchEdge.tool_id)
        .where(
            MatchEdge.run_id == run.id,
            MatchEdge.score >= run.threshold,
            Capability.status.in_(LIVE),
        )
        .distinct()
    ).all()
    counts = query_counts(session)
    out: dict[str, int] = {}
    for qid, slug in pairs:
        out[slug] = out.get(slug, 0) + counts.get(qid, 0)
    return dict(sorted(out.items()))


# --- exploring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    capability_id: str
    capability: str
    rank: int
    score: float
    shared_terms: list[str]


@dataclass(frozen=True)
class MatchedQuery:
    query: str
    searches: int
    hits: list[Hit]


@dataclass
class Explanation:
    tool: str
    times_matched: int
    run_id: int | None
    model: str | None
    top_k: int | None
    threshold: float | None
    queries: list[MatchedQuery] = field(default_factory=list)


def explain(session: Session, slug: str) -> Explanation:
    """Why a tool has its Times Matched: every counted query and the capabilities it hit."""
    tool = get_tool(session, slug)
    run = latest_run(session)
    if run is None:
        return Explanation(slug, 0, None, None, None, None)
    rows = session.execute(
        select(
            MatchEdge.query_id,
            SearchQuery.text,
            MatchEdge.rank,
            MatchEdge.score,
            Capability.id,
            Capability.name,
            Capability.description,
            Capability.unique,
        )
        .join(SearchQuery, SearchQuery.id == MatchEdge.query_id)
        .join(Capability, Capability.id == MatchEdge.capability_id)
        .where(
            MatchEdge.run_id == run.id,
            MatchEdge.tool_id == tool.id,
            MatchEdge.score >= run.threshold,
            Capability.status.in_(LIVE),
        )
        .order_by(MatchEdge.query_id, MatchEdge.rank)
    ).all()
    counts = query_counts(session)
    tokenize = Tokenizer()
    by_query: dict[int, MatchedQuery] = {}
    for qid, text, rank, score, cid, name, desc, uniq in rows:
        entry = by_query.setdefault(qid, MatchedQuery(text, counts.get(qid, 0), []))
        terms = shared_terms(tokenize, text, capability_text(name, desc, uniq))
        entry.hits.append(Hit(cid, name, rank, round(score, 4), terms))
    queries = sorted(by_query.values(), key=lambda q: (-q.searches, q.query))
    return Explanation(
        slug,
        sum(q.searches for q in queries),
        run.id,
        run.model,
        run.top_k,
        run.threshold,
        queries,
    )


@dataclass(frozen=True)
class SharedPair:
    mine: str
    mine_id: str
    theirs: str
    theirs_id: str
    similarity: float


@dataclass(frozen=True)
class SimilarTool:
    slug: str
    name: str
    shared: list[SharedPair]
    only_mine: int
    only_theirs: int

    @property
    def strength(self) -> float:
        return sum(p.similarity for p in self.shared)


def similar(
    session: Session,
    slug: str,
    embedder: Embedder,
    *,
    include_unreviewed: bool = False,
    limit: int = 10,
) -> list[SimilarTool]:
    """Other tools ranked by how many capabilities they share with ``slug`` (its alternatives).

    Uses the same capabilities and the same pairing as the comparison page; tools sharing
    nothing are left out. Ordered by shared count, then total similarity, then slug.
    """
    from decomposer.pages.compare import comparable, load_snapshot  # compare imports this module

    snapshot = load_snapshot(session, None, {})
    if slug not in snapshot.tools:
        get_tool(session, slug)  # raises NotFoundError with the usual hint
    mine = comparable(snapshot.tools[slug].capabilities, include_unreviewed)
    if not mine:
        raise InputError(
            f"{slug} has no {'' if include_unreviewed else 'approved '}capabilities to compare",
            hint="pass --include-unreviewed to use drafts" if not include_unreviewed else None,
        )
    mine_texts = [capability_text(c.name, c.description, c.unique) for c in mine]
    out: list[SimilarTool] = []
    for other_slug, other in snapshot.tools.items():
        if other_slug == slug:
            continue
        theirs = comparable(other.capabilities, include_unreviewed)
        if not theirs:
            continue
        result = align(
            embedder, mine_texts, [capability_text(c.name, c.description, c.unique) for c in theirs]
        )
        if not result.shared:
            continue
        pairs = [
            SharedPair(mine[p.a].name, mine[p.a].id, theirs[p.b].name, theirs[p.b].id, p.similarity)
            for p in result.shared
        ]
        out.append(
            SimilarTool(other_slug, other.name, pairs, len(result.only_a), len(result.only_b))
        )
    out.sort(key=lambda t: (-len(t.shared), -t.strength, t.slug))
    return out[: max(0, limit)]
