"""Assembling what a run needs — key, limits, rate-limited HTTP client, model caller.

The CLI (inline runs) and the Celery workers build their callers here (through the task's own
layer, e.g. ``extraction.task.model_caller``), so both paths get the same transport, limits and
retry policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy.orm import Session

from decomposer.calls.caller import ModelCaller
from decomposer.calls.prompts import Prompt, load_prompt
from decomposer.calls.retry import RetryPolicy
from decomposer.calls.task import T, Task
from decomposer.core.config import Settings
from decomposer.core.errors import NotFoundError
from decomposer.providers.base import ProviderConfig, api_key
from decomposer.providers.pricing import load_prices
from decomposer.providers.ratelimit import (
    Limits,
    RateLimitedTransport,
    RateLimiter,
    limiter_key,
    open_storage,
)
from decomposer.store import Store
from decomposer.store.models import ExtractionRun


@dataclass(frozen=True)
class RunSetup:
    """How to call the model for a run: endpoint, key, prompt version, limits, retries."""

    cfg: ProviderConfig
    key: str = field(repr=False)
    prompt_version: str | None = None
    limits: Limits = field(default_factory=Limits)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    refresh: bool = False
    """Ask the model again instead of answering from the cache (entries are replaced)."""


def limits_for(
    settings: Settings, provider: str, rps: float | None = None, tpm: int | None = None
) -> Limits:
    """Command-line values win over ``[limits.<provider>]`` in the data dir's config.toml."""
    configured = settings.limits.get(provider, {})
    tpm_value = tpm if tpm is not None else configured.get("tpm")
    return Limits(
        rps=rps if rps is not None else configured.get("rps"),
        tpm=int(tpm_value) if tpm_value is not None else None,
    )


def setup_for_run(session: Session, settings: Settings, run_id: int) -> RunSetup:
    """A worker's view of a queued run: the settings it was planned with, its own keys."""
    run = session.get(ExtractionRun, run_id)
    if run is None:
        raise NotFoundError(f"unknown run {run_id}")
    cfg = ProviderConfig(
        provider=run.provider,
        model=run.model,
        mode=run.mode,
        base_url=run.base_url,
        temperature=run.temperature,
        max_tokens=run.max_tokens,
    )
    return RunSetup(
        cfg=cfg,
        key=api_key(settings, run.provider),
        prompt_version=run.prompt_version,
        limits=limits_for(settings, run.provider),
    )


@asynccontextmanager
async def rate_limited_http(
    settings: Settings, setup: RunSetup, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client a run's calls share: its transport waits for the provider key's limits,
    and — limit or not — for the back-off after a 429, which all its requests share."""
    inner = transport or httpx.AsyncHTTPTransport()
    storage = settings.redis_url if setup.limits.active and settings.redis_url else "memory://"
    limiter = RateLimiter(
        setup.limits,
        limiter_key(setup.cfg.provider, setup.key, setup.cfg.base_url),
        open_storage(storage),
    )
    inner = RateLimitedTransport(inner, limiter)
    async with httpx.AsyncClient(
        transport=inner, timeout=setup.cfg.timeout_s, follow_redirects=True
    ) as http:
        yield http


@asynccontextmanager
async def open_caller(
    settings: Settings,
    store: Store,
    setup: RunSetup,
    task: Callable[[Prompt], Task[T]],
    *,
    prompt_name: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[ModelCaller[T]]:
    """A model caller for ``task`` (built from the run's prompt version) on a limited client."""
    prompt = load_prompt(prompt_name, version=setup.prompt_version, root=settings.prompts_dir)
    async with rate_limited_http(settings, setup, transport=transport) as http:
        yield ModelCaller(
            cfg=setup.cfg,
            key=setup.key,
            task=task(prompt),
            store=store,
            http=http,
            prices=load_prices(settings.prices_file),
            policy=setup.policy,
            refresh=setup.refresh,
        )
