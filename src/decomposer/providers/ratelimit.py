"""Rate limiting per provider key: requests/second and tokens/minute, shared by every worker.

Limits are counted with the ``limits`` library (moving windows) in memory, or in Redis when
several worker processes or hosts must share one budget. The limiter sits in the HTTP transport,
so every request — first attempts, retries and Instructor's re-asks alike — passes through it;
below it, each request's time on the wire, 429 or timeout is reported to the job's concurrency
slot (``providers.inflight``).
Tokens are estimated before a request and corrected with the provider's reported usage after.
Requests are spaced evenly (at 98% of the rps limit) rather than sent in bursts. A 429 makes this
process back off: it waits out ``Retry-After`` and slows its pace by 10%, which then recovers
by 10% per successful request. ``SyncRateLimiter`` applies the same budget (same storage, same
key) to synchronous embedding requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from decomposer.core.errors import ConfigError
from decomposer.core.tokens import estimate_tokens
from decomposer.providers.base import retry_after
from decomposer.providers.inflight import current_slot

Sleep = Callable[[float], Awaitable[None]]
HEADROOM = 0.98
"""Requests are spaced for 98% of the rps limit, so arrival jitter stays under it."""
CATCH_UP_S = (1 - HEADROOM) / 2
"""A late start is made up by at most half the slack ``HEADROOM`` leaves per second."""
EXPECTED_OUTPUT_TOKENS = 1024
"""Output tokens assumed before a request's usage is known (corrected afterwards)."""


@dataclass(frozen=True)
class Limits:
    rps: float | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        if self.rps is not None and self.rps <= 0:
            raise ConfigError("--rps must be greater than 0")
        if self.tpm is not None and self.tpm < 1:
            raise ConfigError("--tpm must be at least 1")

    @property
    def active(self) -> bool:
        return self.rps is not None or self.tpm is not None


def limiter_key(provider: str, api_key: str, base_url: str | None = None) -> str:
    """Limits belong to a provider account; the key is hashed so it never reaches storage."""
    digest = hashlib.sha256(f"{base_url or ''}\0{api_key}".encode()).hexdigest()[:16]
    return f"decomposer:{provider}:{digest}"


def open_storage(uri: str) -> Storage:
    """``memory://`` or ``redis://host:port/db`` (used asynchronously through redis-py)."""
    if uri.startswith(("redis://", "rediss://")):
        return RedisStorage(f"async+{uri}", implementation="redispy")
    if uri in ("memory://", "async+memory://"):
        return MemoryStorage()
    raise ConfigError(f"unsupported rate-limit storage {uri!r}", hint="use memory:// or redis://")


@dataclass
class RateLimiter:
    limits: Limits
    key: str
    storage: Storage = field(default_factory=lambda: open_storage("memory://"))
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    pace: float = 1.0
    cooldown_until: float = 0.0
    throttled: int = 0
    _last_start: float = 0.0
    _started: bool = False
    _gate: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def __post_init__(self) -> None:
        self._strategy = MovingWindowRateLimiter(self.storage)
        self._rps = _per_second(self.limits.rps) if self.limits.rps else None
        self._tpm = RateLimitItemPerMinute(self.limits.tpm) if self.limits.tpm else None

    async def acquire(self, tokens: int) -> None:
        """Wait until one more request of about ``tokens`` tokens fits every limit."""
        await self._wait_cooldown()
        if self._rps is not None:
            await self._keep_pace()
            await self._take(self._rps, 1)
        if self._tpm is not None:
            await self._take(self._tpm, min(tokens, self._tpm.amount))

    async def settle(self, estimated: int, actual: int) -> None:
        """Charge tokens the estimate missed, so the next requests wait for them."""
        if self._tpm is not None and actual > estimated:
            await self._take(self._tpm, min(actual - estimated, self._tpm.amount))
        self.pace = min(1.0, self.pace * 1.1)

    def throttle(self, wait_s: float | None) -> None:
        """The provider said 429: stop until ``Retry-After`` and slow down a little."""
        self.throttled += 1
        self.pace = max(0.1, self.pace * 0.9)
        self.cooldown_until = max(self.cooldown_until, self.clock() + (wait_s or 1.0))

    async def aclose(self) -> None:
        """Close the Redis connection pool behind the storage, if there is one."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()

    async def _wait_cooldown(self) -> None:
        while (delay := self.cooldown_until - self.clock()) > 0:
            await self.sleep(delay)

    async def _keep_pace(self) -> None:
        """Start requests evenly, at least ``1 / (rps × HEADROOM × pace)`` apart.

        The moving window alone lets a whole second's budget go at once, and the provider's
        own window, seeing those requests arrive with a little jitter, then counts one too
        many. Starters pass one at a time on a fixed schedule; requests delayed by a busy
        event loop catch up by at most half the slack the headroom leaves in a second (10 ms),
        so the provider's window still has room for arrival jitter: a deeper catch-up (half a
        gap) made a 429 of most late wake-ups at 5 req/s on a loaded machine.
        """
        assert self.limits.rps is not None
        gap = 1.0 / (self.limits.rps * HEADROOM * self.pace)
        async with self._gate:
            now = self.clock()
            # Keep to the schedule (a late wake-up is made up on the next gap), but after a
            # stall catch up by at most CATCH_UP_S, never with a burst.
            catch_up = min(gap / 2, CATCH_UP_S)
            start = max(self._last_start + gap, now - catch_up) if self._started else now
            if start > now:
                await self.sleep(start - now)
            self._last_start, self._started = start, True

    async def _take(self, item: RateLimitItem, cost: int) -> None:
        while not await self._strategy.hit(item, self.key, cost=cost):
            stats = await self._strategy.get_window_stats(item, self.key)
            await self.sleep(max(0.005, stats.reset_time - time.time()))


def _per_second(rps: float) -> RateLimitItem:
    """``limits`` takes whole amounts: 0.5/s becomes 1 per 2 s, 2.5/s becomes 5 per 2 s."""
    for seconds in (1, 2, 4, 5, 10, 20, 60):
        amount = rps * seconds
        if amount >= 1 and abs(amount - round(amount)) < 1e-9:
            return RateLimitItemPerSecond(round(amount), seconds)
    return RateLimitItemPerSecond(max(1, round(rps * 60)), 60)


@dataclass
class RateLimitedTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport: every chat completion request waits for the limiter."""

    inner: httpx.AsyncBaseTransport
    limiter: RateLimiter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not _is_completion(request):
            return await self.inner.handle_async_request(request)
        estimated = estimate_request_tokens(request.content)
        slot = current_slot()
        slot.queued()
        await self.limiter.acquire(estimated)
        ticket = slot.sent(estimated)
        try:
            response = await self.inner.handle_async_request(request)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError):
            slot.timed_out(ticket)
            raise
        if response.status_code == 429:
            slot.answered(ticket, 429, None)
            self.limiter.throttle(retry_after(response.headers))
            return response
        used = None
        if response.status_code == 200:
            await response.aread()
            used = _used_tokens(response.content)
            await self.limiter.settle(estimated, used)
        slot.answered(ticket, response.status_code, used or None)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
        await self.limiter.aclose()


def _is_completion(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/chat/completions")


def estimate_request_tokens(body: bytes) -> int:
    try:
        payload: dict[str, Any] = json.loads(body or b"{}")
    except ValueError:
        return estimate_tokens(body.decode("utf-8", "replace"))
    text = json.dumps(payload.get("messages", []), ensure_ascii=False)
    schema = json.dumps(payload.get("response_format") or payload.get("tools") or "")
    output = min(int(payload.get("max_tokens") or EXPECTED_OUTPUT_TOKENS), EXPECTED_OUTPUT_TOKENS)
    return estimate_tokens(text) + estimate_tokens(schema) + output


def _used_tokens(body: bytes) -> int:
    try:
        usage = json.loads(body).get("usage") or {}
        return int(usage.get("total_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return 0


@dataclass
class SyncRateLimiter:
    """The same per-key budget for synchronous callers (embedding requests): a moving window
    per second and per minute in the same storage and under the same key as ``RateLimiter``,
    so embeddings and chat calls of one provider account share it. Requests are spaced at
    ``HEADROOM`` of the rps limit; a 429 pauses until ``Retry-After``."""

    limits: Limits
    key: str
    storage_uri: str = "memory://"
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    cooldown_until: float = 0.0
    _last_start: float | None = None

    def __post_init__(self) -> None:
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter as SyncMovingWindow

        self._strategy = SyncMovingWindow(storage_from_string(self.storage_uri))
        self._rps = _per_second(self.limits.rps) if self.limits.rps else None
        self._tpm = RateLimitItemPerMinute(self.limits.tpm) if self.limits.tpm else None

    def acquire(self, tokens: int) -> None:
        """Wait until one more request of about ``tokens`` tokens fits every limit."""
        while (delay := self.cooldown_until - self.clock()) > 0:
            self.sleep(delay)
        if self._rps is not None and self.limits.rps is not None:
            gap = 1.0 / (self.limits.rps * HEADROOM)
            now = self.clock()
            if self._last_start is not None and self._last_start + gap > now:
                self.sleep(self._last_start + gap - now)
            self._last_start = self.clock()
            self._take(self._rps, 1)
        if self._tpm is not None:
            self._take(self._tpm, min(tokens, self._tpm.amount))

    def throttle(self, wait_s: float | None) -> None:
        self.cooldown_until = max(self.cooldown_until, self.clock() + (wait_s or 1.0))

    def _take(self, item: RateLimitItem, cost: int) -> None:
        while not self._strategy.hit(item, self.key, cost=cost):
            stats = self._strategy.get_window_stats(item, self.key)
            self.sleep(max(0.005, stats.reset_time - time.time()))
