"""The search page's read model: a free-text query ranked against the match graph's capabilities.

The corpus is what ``match run`` matches (``matching.match.live_capabilities``: every capability
not rejected or vanished, across tools), ranked with ``matching.align.top_k``. The query is
embedded lexically: a provider embedder would need a key and a network call per search, and the
review UI loads no provider client; when the newest match run used one, the result says so.
Each hit also carries how many stored search queries the match graph sends to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from decomposer.core.errors import InputError
from decomposer.store.match_models import MatchEdge, MatchRun
from decomposer.store.models import Capability, Tool

if TYPE_CHECKING:
    from decomposer.matching.match import LiveCapability

MAX_QUERY = 500
MAX_RESULTS = 50


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class SearchHit(_Frozen):
    capability_id: str
    name: str
    tool: str
    tool_name: str
    category: str
    status: str
    description: str
    score: float
    graph_queries: int
    """Stored search queries whose top-k in the newest match run include this capability."""


class SearchResult(_Frozen):
    query: str
    like: str | None
    hits: list[SearchHit]
    embedder: str
    run_model: str | None
    """The embedder of the newest match run, when it differs from the one used here."""
    searched: int


def search(session: Session, query: str, like: str | None = None, k: int = 20) -> SearchResult:
    """Capabilities across tools ranked by similarity to ``query``; with ``like`` (a tool slug)
    and no query, the alternatives to that tool: other tools' capabilities closest to its own."""
    from decomposer.matching.align import top_k
    from decomposer.matching.embed import LexicalEmbedder
    from decomposer.matching.match import live_capabilities

    query = " ".join(query.split())
    if len(query) > MAX_QUERY:
        raise InputError(f"a search is at most {MAX_QUERY} characters")
    if not 1 <= k <= MAX_RESULTS:
        raise InputError(f"ask for 1 to {MAX_RESULTS} results")
    caps = live_capabilities(session)
    text = query
    if like:
        own = [c.text for c in caps if c.tool == like]
        if session.scalar(select(Tool.id).where(Tool.slug == like)) is None:
            raise InputError(f"unknown tool {like!r}")
        text = " ".join([query, *own]) if query else " ".join(own)
        caps = [c for c in caps if c.tool != like]
    embedder = LexicalEmbedder()
    run = session.scalars(
        select(MatchRun).where(MatchRun.status == "succeeded").order_by(MatchRun.id.desc()).limit(1)
    ).first()
    result = SearchResult(
        query=query,
        like=like,
        hits=[],
        embedder=embedder.model,
        run_model=run.model if run is not None and run.model != embedder.model else None,
        searched=len(caps),
    )
    if not text.strip() or not caps:
        return result
    corpus, vectors = embedder.encode([c.text for c in caps], [text])
    indices, scores = top_k(corpus, vectors, k)
    chosen = [
        (caps[int(i)], float(s)) for i, s in zip(indices[0], scores[0], strict=True) if i >= 0
    ]
    return result.model_copy(update={"hits": _hits(session, chosen)})


def _hits(session: Session, chosen: list[tuple[LiveCapability, float]]) -> list[SearchHit]:
    ids = [c.id for c, _ in chosen]
    rows = {
        cap.id: (cap, name)
        for cap, name in session.execute(
            select(Capability, Tool.name)
            .join(Tool, Tool.id == Capability.tool_id)
            .where(Capability.id.in_(ids))
        )
    }
    edges = dict(
        session.execute(
            select(MatchEdge.capability_id, func.count())
            .where(MatchEdge.capability_id.in_(ids))
            .group_by(MatchEdge.capability_id)
        ).all()
    )
    hits = []
    for live, score in chosen:
        cap, tool_name = rows[live.id]
        hits.append(
            SearchHit(
                capability_id=cap.id,
                name=cap.name,
                tool=live.tool,
                tool_name=tool_name,
                category=cap.category,
                status=cap.status,
                description=cap.description,
                score=round(score, 4),
                graph_queries=int(edges.get(cap.id, 0)),
            )
        )
    return hits
