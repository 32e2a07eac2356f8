"""What the HTTP transports tell the concurrency controller of the job they serve: each request
queued for the rate limiter, sent and answered (with its latency on the wire), 429s
and timeouts, and the back-off pauses during which a request gives its concurrency slot back.

The slot is bound to the calling task (a context variable), so the transports stay ignorant of
who sizes the concurrency; outside a controlled run the slot does nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Protocol


class Slot(Protocol):
    """One job's concurrency slot, as the transports report to it."""

    def queued(self) -> None:
        """A request starts waiting for the rate limiter (time the job is not busy)."""
        ...

    def sent(self, tokens: int) -> int:
        """A request left (after the rate limiter let it); returns a ticket for its answer."""
        ...

    def answered(self, ticket: int, status: int, tokens: int | None) -> None:
        """Its answer arrived: 200 (with the tokens used, when reported), 429, or another."""
        ...

    def timed_out(self, ticket: int) -> None:
        """It timed out or its connection failed."""
        ...

    def paused(self) -> AbstractAsyncContextManager[None]:
        """The slot is free for another job while the body (a
        back-off sleep) runs, and taken again before the request is repeated."""
        ...


class NoSlot:
    """Outside a controlled run: nothing to report, nothing to give back."""

    def queued(self) -> None:
        return None

    def sent(self, tokens: int) -> int:
        return 0

    def answered(self, ticket: int, status: int, tokens: int | None) -> None:
        return None

    def timed_out(self, ticket: int) -> None:
        return None

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        yield


_NONE = NoSlot()
_SLOT: ContextVar[Slot | None] = ContextVar("decomposer_concurrency_slot", default=None)


def current_slot() -> Slot:
    return _SLOT.get() or _NONE


@contextmanager
def bound(slot: Slot) -> Iterator[Slot]:
    """Bind ``slot`` to the current task (and the tasks and threads it starts) for the body."""
    token = _SLOT.set(slot)
    try:
        yield slot
    finally:
        _SLOT.reset(token)
