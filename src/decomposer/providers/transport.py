"""HTTP-level retries for model requests: a request that failed in transport (429, 5xx,
timeout, refused connection) is repeated on its own, so the conversation above it — Instructor's
validation re-asks and the answers already paid for — is never replayed.

``RetryingTransport`` waits for ``Retry-After`` when the provider gives one, else backs off
exponentially with jitter. A 429 also starts a back-off shared by every request on the same
transport: requests about to start wait it out too, so a run without a configured limit slows
down as a whole instead of multiplying its requests. The SDK (and Instructor) above only ever
see a success or the final failure. What each logical call sent is counted in a ``Tally`` bound
to the calling task (a context variable), so the caller can log requests, not Instructor turns.
While a request backs off, its job's concurrency slot (``providers.inflight``) is given back.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from decomposer.core.clock import Clock, Sleep, utcnow
from decomposer.providers.inflight import current_slot
from decomposer.providers.spec import TRANSIENT_STATUS, retry_after

NO_HINT_429_WAIT_S = 1.0
"""Shared back-off after a 429 that did not say when to come back (then grows per failure)."""


@dataclass(frozen=True)
class Backoff:
    """When to give up on one request: ``attempts`` failures (429s that named a wait excluded:
    that is the provider pacing us) or ``deadline_s`` since its first try."""

    attempts: int = 6
    deadline_s: float = 300.0
    initial_wait_s: float = 1.0
    max_wait_s: float = 60.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Exponential back-off with up to one initial wait of jitter."""
        base = self.initial_wait_s * 2 ** max(0, failures - 1)
        return float(min(self.max_wait_s, base + rng.uniform(0, self.initial_wait_s)))


@dataclass
class Tally:
    """What one logical call put on the wire: requests sent (retries included), 429s seen."""

    requests: int = 0
    throttled: int = 0
    replayed: int = 0
    replayed_input_tokens: int = 0
    replayed_output_tokens: int = 0
    answers: list[str] = field(default_factory=list)
    """Request-body hashes of the answers received or replayed (see ``calls.answers``)."""
    on_send: Callable[[int], Awaitable[None]] | None = None
    """Called with the new request count just before each request goes out (the call log)."""

    async def sent(self) -> None:
        self.requests += 1
        if self.on_send is not None:
            await self.on_send(self.requests)


_TALLY: ContextVar[Tally | None] = ContextVar("decomposer_request_tally", default=None)


@contextmanager
def tally(on_send: Callable[[int], Awaitable[None]] | None = None) -> Iterator[Tally]:
    """Count the requests made by the current task (and the tasks it awaits) in a new tally."""
    current = Tally(on_send=on_send)
    token = _TALLY.set(current)
    try:
        yield current
    finally:
        _TALLY.reset(token)


def current_tally() -> Tally:
    """The tally of the call in progress, or a throwaway one outside any call."""
    return _TALLY.get() or Tally()


def is_completion(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/chat/completions")


_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass
class RetryingTransport(httpx.AsyncBaseTransport):
    """Wraps the transport that sends (usually the rate-limited one, so retries wait for a
    rate-limit slot like any request); only chat-completion requests are retried."""

    inner: httpx.AsyncBaseTransport
    backoff: Backoff = field(default_factory=Backoff)
    sleep: Sleep = asyncio.sleep
    clock: Clock = utcnow
    rng: random.Random = field(default_factory=random.Random)
    cooldown_until: datetime | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not is_completion(request):
            return await self.inner.handle_async_request(request)
        started, failures, counts = self.clock(), 0, current_tally()
        await self._wait_shared_backoff()
        while True:
            await counts.sent()
            try:
                response = await self.inner.handle_async_request(request)
            except _TRANSPORT_ERRORS:
                failures += 1
                wait = self.backoff.delay(failures, self.rng)
                if self._exhausted(failures, started, wait):
                    raise
                await self._back_off(wait)
                continue
            if response.status_code not in TRANSIENT_STATUS:
                return response
            hinted = retry_after(response.headers)
            if response.status_code == 429:
                counts.throttled += 1
            if not (response.status_code == 429 and hinted is not None):
                failures += 1
            wait = hinted if hinted is not None else self.backoff.delay(failures, self.rng)
            wait = min(wait, self.backoff.max_wait_s)
            if response.status_code == 429:
                self._share(wait if hinted is not None else NO_HINT_429_WAIT_S * failures)
            if self._exhausted(failures, started, wait):
                return response
            await response.aclose()
            await self._back_off(wait)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _exhausted(self, failures: int, started: datetime, wait: float) -> bool:
        elapsed = (self.clock() - started).total_seconds()
        return failures >= self.backoff.attempts or elapsed + wait > self.backoff.deadline_s

    def _share(self, wait_s: float) -> None:
        until = self.clock() + timedelta(seconds=wait_s)
        if self.cooldown_until is None or until > self.cooldown_until:
            self.cooldown_until = until

    async def _wait_shared_backoff(self) -> None:
        """A new request waits out a 429 another request just received (once, not in a loop:
        the retrying request itself goes first when its own wait is over)."""
        if self.cooldown_until is None:
            return
        delay = (self.cooldown_until - self.clock()).total_seconds()
        if delay > 0:
            await self._back_off(delay)

    async def _back_off(self, wait_s: float) -> None:
        """Sleep with the job's concurrency slot given back, so another job's request can use
        it meanwhile; the slot is taken again before this request is repeated."""
        async with current_slot().paused():
            await self.sleep(wait_s)
