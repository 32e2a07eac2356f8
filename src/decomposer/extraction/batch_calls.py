"""Every Batch API request (upload, create, status, download, cancel, delete) under the provider
key's rate limiter, with tenacity retries that honour Retry-After, and one log line each.

These requests are not billed per token, so they get a ``decomposer.batch`` log line (call,
outcome, status, latency) rather than an ``llm_calls`` row: that table holds one row per billed
model request with its tokens and cost, and a run's call counts and costs are read from it. The
billed work of a batch — each returned item — is logged there at collection, at batch price.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay

from decomposer.calls.retry import AttemptsBesidesThrottling, RetryPolicy
from decomposer.calls.runtime import limits_for
from decomposer.core.clock import Sleep
from decomposer.core.config import Settings
from decomposer.providers.ratelimit import RateLimiter, limiter_key, open_storage
from decomposer.providers.spec import BatchAPIError, BatchClient, Remote

log = logging.getLogger("decomposer.batch")
R = TypeVar("R")
NOT_FOUND = 404


@dataclass
class GuardedBatchClient:
    """A provider's ``BatchClient`` whose every request waits for the key's limiter, is retried
    on transient failures (Retry-After first, else exponential backoff) and is logged."""

    inner: BatchClient
    provider: str
    limiter: RateLimiter | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic

    async def create(
        self, content: bytes, name: str, model: str, metadata: dict[str, str]
    ) -> tuple[str, str, str]:
        # Not retried as a whole: a retry after the upload succeeded would upload again.
        return await self._once("create", lambda: self.inner.create(content, name, model, metadata))

    async def retrieve(self, batch_id: str) -> Remote:
        return await self._run("retrieve", lambda: self.inner.retrieve(batch_id))

    async def download(self, file_id: str) -> str:
        return await self._run("download", lambda: self.inner.download(file_id))

    async def cancel(self, batch_id: str) -> Remote:
        return await self._run("cancel", lambda: self.inner.cancel(batch_id))

    async def delete_file(self, file_id: str) -> None:
        """Delete a file; one the provider no longer has counts as deleted."""
        try:
            await self._run("delete_file", lambda: self.inner.delete_file(file_id))
        except BatchAPIError as exc:
            if exc.status != NOT_FOUND:
                raise

    async def _run(self, what: str, make: Callable[[], Awaitable[R]]) -> R:
        retrying = AsyncRetrying(
            stop=AttemptsBesidesThrottling(self.policy.attempts)
            | stop_after_delay(self.policy.deadline_s),
            wait=self.policy.wait,
            retry=retry_if_exception(_transient),
            sleep=self.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(what, make)
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _once(self, what: str, make: Callable[[], Awaitable[R]]) -> R:
        if self.limiter is not None:
            await self.limiter.acquire(1)
        started = self.monotonic()
        try:
            result = await make()
        except BatchAPIError as exc:
            if exc.status == 429 and self.limiter is not None:
                self.limiter.throttle(exc.retry_after)
            self._log(what, "error", exc.status, started)
            raise
        self._log(what, "ok", None, started)
        return result

    def _log(self, what: str, outcome: str, status: int | None, started: float) -> None:
        log.info(
            "batch call provider=%s call=%s outcome=%s status=%s latency_ms=%.1f",
            self.provider,
            what,
            outcome,
            status if status is not None else "-",
            (self.monotonic() - started) * 1000,
        )


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, BatchAPIError) and exc.transient


def guard(
    settings: Settings,
    provider: str,
    key: str,
    base_url: str | None,
    inner: BatchClient,
    *,
    sleep: Sleep = asyncio.sleep,
) -> GuardedBatchClient:
    """``inner`` under the same per-key limiter (and storage) the key's chat calls use."""
    limits = limits_for(settings, provider)
    limiter = None
    if limits.active:
        storage = open_storage(settings.redis_url or "memory://")
        limiter = RateLimiter(limits, limiter_key(provider, key, base_url), storage, sleep=sleep)
    return GuardedBatchClient(inner, provider, limiter, sleep=sleep)


__all__ = ["GuardedBatchClient", "guard"]
