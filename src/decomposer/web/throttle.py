"""Failed logins throttled per client address: a delay that doubles with each wrong token.

After a few wrong access tokens every further attempt from that address must wait (429 with
``Retry-After``), so guessing ``DECOMPOSER_UI_TOKEN`` takes hours, not seconds. A success
clears the address; a quiet window forgets it. Time comes from an injected clock. Memory is
bounded: at most ``MAX_TRACKED`` addresses are remembered, the stalest dropped first.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from decomposer.core.clock import Clock, utcnow

FREE_FAILURES = 5
"""Wrong tokens allowed in a row before the first delay (typos happen)."""
BASE_DELAY_S = 1.0
MAX_DELAY_S = 900.0
FORGET_AFTER = timedelta(minutes=15)
"""An address with no failure for this long (after its delay) starts afresh."""
MAX_TRACKED = 10_000


class TooManyAttempts(Exception):
    """Raised for a login attempt during its address's delay; answered 429."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"Too many failed logins; try again in {retry_after_s} s.")
        self.retry_after_s = retry_after_s


@dataclass
class _Record:
    failures: int
    last: datetime
    blocked_until: datetime


class LoginThrottle:
    """Per-address failure counts and delays, safe to share between request threads."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Raise ``TooManyAttempts`` while ``address`` must wait."""
        now = self.clock()
        with self._lock:
            record = self._current(address, now)
            if record is not None and record.blocked_until > now:
                wait = (record.blocked_until - now).total_seconds()
                raise TooManyAttempts(max(1, math.ceil(wait)))

    def failed(self, address: str) -> None:
        now = self.clock()
        with self._lock:
            record = self._current(address, now) or _Record(0, now, now)
            record.failures += 1
            record.last = now
            extra = record.failures - FREE_FAILURES
            if extra >= 0:
                delay = min(MAX_DELAY_S, BASE_DELAY_S * 2.0 ** min(extra, 32))
                record.blocked_until = now + timedelta(seconds=delay)
            self._records.pop(address, None)
            self._records[address] = record  # most recent last, for pruning
            if len(self._records) > MAX_TRACKED:
                self._prune(now)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._records.pop(address, None)

    def _current(self, address: str, now: datetime) -> _Record | None:
        record = self._records.get(address)
        if record is not None and now - max(record.last, record.blocked_until) > FORGET_AFTER:
            del self._records[address]
            return None
        return record

    def _prune(self, now: datetime) -> None:
        for address in list(self._records):
            self._current(address, now)
        while len(self._records) > MAX_TRACKED:
            del self._records[next(iter(self._records))]
