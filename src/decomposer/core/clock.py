"""Time as an injected dependency: library code takes a ``Clock`` and a ``Sleep`` instead of
reading the wall clock, so tests run on a fake clock and never wait."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
