"""The call log and the answer cache: the one constructor of ``llm_calls`` rows and the one
reader and writer of ``llm_cache``, shared by inline calls, Batch results and embeddings."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from decomposer.calls.task import Task
from decomposer.core.clock import Clock, utcnow
from decomposer.providers.pricing import PriceTable
from decomposer.providers.spec import ProviderConfig
from decomposer.store import Store
from decomposer.store.models import CachedResponse, LLMCall

log = logging.getLogger("decomposer.calls")

BATCH_DISCOUNT = 0.5
"""Batch requests cost half the list price on both Mistral and OpenAI (applied to prices.json)."""
EXTRACT = "extract"
EMBED = "embed"
CONTRAST = "contrast"


def call_row(
    *,
    run_id: int | None,
    chunk_id: str | None,
    provider: str,
    model: str,
    mode: str,
    prompt_version: str,
    request_hash: str,
    outcome: str,
    now: datetime,
    task: str = EXTRACT,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: float | None = 0.0,
    latency_ms: float = 0.0,
    attempts: int = 1,
    cache_hit: bool = False,
    error: str | None = None,
    rejections: list[str] | None = None,
) -> LLMCall:
    """The one place a call-log row is made (and its log line written), for every path:
    inline calls, cache hits, failures, Batch API results and embedding requests alike."""
    log.info(
        "llm call provider=%s model=%s mode=%s chunk=%s outcome=%s attempts=%d "
        "tokens_in=%d tokens_out=%d cost_usd=%s latency_ms=%.1f task=%s",
        provider,
        model,
        mode,
        chunk_id,
        outcome,
        attempts,
        input_tokens,
        output_tokens,
        cost_usd,
        latency_ms,
        task,
    )
    return LLMCall(
        run_id=run_id,
        chunk_id=chunk_id,
        task=task,
        provider=provider,
        model=model,
        mode=mode,
        prompt_version=prompt_version,
        request_hash=request_hash,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
        attempts=attempts,
        cache_hit=cache_hit,
        outcome=outcome,
        error=error,
        rejections=rejections,
        created_at=now,
    )


def request_hash(cfg: ProviderConfig, task: Task[Any], context: dict[str, Any]) -> str:
    """Everything that can change the answer: endpoint, sampling, prompt, schema, input."""
    material = {
        "provider": cfg.provider,
        "base_url": cfg.base_url,
        "model": cfg.model,
        "mode": cfg.mode,
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
        "prompt": task.prompt.sha256,
        "schema": task.schema_sha256,
        "context": context,
    }
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def batch_cost(
    prices: PriceTable, provider: str, model: str, tokens_in: int, tokens_out: int
) -> float | None:
    """USD for one batch request: the list price times ``BATCH_DISCOUNT``."""
    full = prices.cost(provider, model, tokens_in, tokens_out)
    return None if full is None else round(full * BATCH_DISCOUNT, 8)


def cached_payload(session: Session, request_hash: str) -> str | None:
    """A validated cached answer (an answer kept unvalidated is never served again)."""
    row = session.get(CachedResponse, request_hash)
    return row.payload if row is not None and row.validated else None


def cached_hashes(session: Session, hashes: Collection[str]) -> set[str]:
    """Which of these requests already have a validated cached answer."""
    found: set[str] = set()
    for part in _parts(list(hashes)):
        found.update(
            session.scalars(
                select(CachedResponse.request_hash).where(
                    CachedResponse.request_hash.in_(part), CachedResponse.validated.is_(True)
                )
            )
        )
    return found


def cached_payloads(session: Session, hashes: Collection[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in _parts(list(hashes)):
        rows = session.scalars(select(CachedResponse).where(CachedResponse.request_hash.in_(part)))
        found.update((row.request_hash, row.payload) for row in rows)
    return found


def remember(
    session: Session,
    request_hash: str,
    provider: str,
    model: str,
    payload: str,
    now: datetime,
    *,
    validated: bool = True,
) -> None:
    """Store an answer under its request hash (replacing an older one); one that failed
    validation after all re-asks is kept for its run but never served as a cache hit."""
    session.merge(
        CachedResponse(
            request_hash=request_hash,
            provider=provider,
            model=model,
            payload=payload,
            created_at=now,
            validated=validated,
        )
    )


def _parts(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class CallLog:
    """The store and clock the log and cache are written with, for callers that hold neither
    a session nor a transaction of their own."""

    store: Store
    clock: Clock = utcnow

    def cached(self, request_hash: str) -> str | None:
        with self.store.transaction() as session:
            return cached_payload(session, request_hash)

    def add(
        self, row: LLMCall, cache: tuple[str, str] | None = None, *, validated: bool = True
    ) -> int:
        """Write one call row and, with ``(request_hash, payload)``, its answer; the row's id."""
        with self.store.transaction() as session:
            if cache is not None:
                remember(
                    session,
                    cache[0],
                    row.provider,
                    row.model,
                    cache[1],
                    row.created_at,
                    validated=validated,
                )
            session.add(row)
            session.flush()
            return row.id

    def sending(self, row_id: int, requests: int) -> None:
        """A pending call is about to send its ``requests``-th request: count it first, so a
        process killed mid-request never leaves a request the provider bills unlogged."""
        with self.store.transaction() as session:
            session.execute(
                update(LLMCall)
                .where(LLMCall.id == row_id, LLMCall.outcome == PENDING)
                .values(attempts=requests)
                .execution_options(synchronize_session=False)
            )

    def complete(
        self,
        row_id: int,
        row: LLMCall,
        cache: tuple[str, str] | None = None,
        *,
        validated: bool = True,
    ) -> None:
        """Turn a pending row into the call's final row (and store its answer) at once."""
        with self.store.transaction() as session:
            if cache is not None:
                remember(
                    session,
                    cache[0],
                    row.provider,
                    row.model,
                    cache[1],
                    row.created_at,
                    validated=validated,
                )
            pending = session.get(LLMCall, row_id)
            if pending is None:
                session.add(row)
                return
            for name in _FINAL_FIELDS:
                setattr(pending, name, getattr(row, name))


PENDING = "pending"
"""Outcome of a call whose requests were sent and whose answer has not been logged yet."""
_FINAL_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "attempts",
    "cache_hit",
    "outcome",
    "error",
    "rejections",
)
