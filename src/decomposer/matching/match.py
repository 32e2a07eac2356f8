"""The match graph: user search queries -> the capabilities that answer them -> Times Matched.

- ``run_match``: every stored query (imported by ``matching.queries``) is matched to its top-k
  capabilities over all tools (every capability that is not rejected or vanished), with the
  chosen embedder; the edges ``query -> capability (rank, score)`` replace the previous run's,
  in one transaction.
- Times Matched (``catalog.snapshot.times_matched_counts``, read by scores and pages): per tool,
  the number of searches (query counts summed over days) whose top-k hits include at least one
  of its capabilities scoring at least the run's threshold. Each query counts at most once per
  tool. It feeds the Match Graph sub-score (score.py).
- ``explain``: the queries that matched a tool, with the capability hit, rank, score and the
  word stems query and capability share. ``similar``: the tools with the most shared
  capabilities (``align.align``, the same pairing as the comparison page).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from decomposer.catalog.snapshot import (
    comparable,
    latest_run,
    load_snapshot,
    query_counts,
    times_matched_counts,
)
from decomposer.core.errors import InputError
from decomposer.core.vocab import LIVE_STATUSES as LIVE
from decomposer.core.vocab import MATCHES_PER_QUERY
from decomposer.matching.align import align, top_k
from decomposer.matching.embed import Embedder, Tokenizer, capability_text, shared_terms
from decomposer.store import Store
from decomposer.store.match_models import MatchEdge, MatchRun, SearchQuery
from decomposer.store.models import Capability, Tool
from decomposer.store.tools import get_tool

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
        matched = times_matched_counts(session)
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
