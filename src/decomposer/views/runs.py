"""Extraction runs with their call totals, aggregated from the call log."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from decomposer.core.vocab import RunStatus
from decomposer.store.models import ExtractionRun, LLMCall, Tool


class RunSummary(BaseModel):
    """One row of ``decomposer runs``: a run with its call-log totals (cache hits not billed)."""

    model_config = ConfigDict(frozen=True)

    id: int
    tool: str
    status: RunStatus
    provider: str
    model: str
    mode: str
    prompt: str
    prompt_hash: str
    chunks: int
    calls: int
    cache_hits: int
    attempts: int
    pending: int
    """Calls logged as sent whose answer never came (a killed process): counted, not priced."""
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    """None when some call had no known price (an unpriced remote host): never shown as $0."""
    capabilities: int
    ungrounded: int
    error: str | None
    started_at: str
    finished_at: str | None


def list_runs(session: Session, tool_slug: str | None = None, limit: int = 50) -> list[RunSummary]:
    calls = (
        select(
            LLMCall.run_id,
            func.sum(case((LLMCall.cache_hit, 0), else_=1)).label("calls"),
            func.sum(case((LLMCall.cache_hit, 1), else_=0)).label("cache_hits"),
            func.sum(LLMCall.attempts).label("attempts"),
            # Sent but never completed (process killed): billed, tokens unknown.
            func.sum(case((LLMCall.outcome == "pending", 1), else_=0)).label("pending"),
            func.sum(LLMCall.input_tokens).label("input_tokens"),
            func.sum(LLMCall.output_tokens).label("output_tokens"),
            func.sum(func.coalesce(LLMCall.cost_usd, 0.0)).label("cost_usd"),
            func.sum(case((LLMCall.cost_usd.is_(None), 1), else_=0)).label("unpriced"),
        )
        .group_by(LLMCall.run_id)
        .subquery()
    )
    query = (
        select(ExtractionRun, Tool.slug, calls)
        .join(Tool, Tool.id == ExtractionRun.tool_id)
        .outerjoin(calls, calls.c.run_id == ExtractionRun.id)
        .order_by(ExtractionRun.id.desc())
        .limit(limit)
    )
    if tool_slug is not None:
        query = query.where(Tool.slug == tool_slug)
    out = []
    for row in session.execute(query):
        run: ExtractionRun = row[0]
        out.append(
            RunSummary(
                id=run.id,
                tool=row.slug,
                status=run.status,
                provider=run.provider,
                model=run.model,
                mode=run.mode,
                prompt=f"{run.prompt_name}/{run.prompt_version}",
                prompt_hash=run.prompt_hash,
                chunks=run.chunks_total,
                calls=int(row.calls or 0),
                cache_hits=int(row.cache_hits or 0),
                attempts=int(row.attempts or 0),
                pending=int(row.pending or 0),
                input_tokens=int(row.input_tokens or 0),
                output_tokens=int(row.output_tokens or 0),
                cost_usd=None if row.unpriced else round(float(row.cost_usd or 0.0), 6),
                capabilities=run.capabilities,
                ungrounded=run.ungrounded,
                error=run.error,
                started_at=run.started_at.isoformat(),
                finished_at=run.finished_at.isoformat() if run.finished_at else None,
            )
        )
    return out
