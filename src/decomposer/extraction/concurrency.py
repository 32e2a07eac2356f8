"""Adaptive concurrency: how many jobs a run keeps in flight so the provider's limit is used.

With a requests/second (or tokens/minute) limit, Little's law says a limiter fed at ``λ`` requests
per second with ``W`` seconds on the wire needs ``λ × W`` requests in flight; ``Controller`` keeps
``⌈λ × W × HEADROOM⌉ + SPARE`` jobs going, with ``W`` the largest of the smoothed answered
latency, twice the mean age of the requests still out (so a slow-down shows before its answers
do, and a run's first seconds are not starved) and the time a job keeps its slot busy per request
(its own store and parsing work included, waits for the limiter and back-offs excluded). On a 429 or
a timeout it halves, at most once per round trip and not below the fraction of the limit the
provider still admits, and grows back by one slot per round trip of successes (AIMD).
``--concurrency N`` pins the number; without any limit it stays at the default.

``Controller`` is a pure object driven by an injected clock and the transports' events;
``Gate`` is the adjustable semaphore jobs hold, and ``JobSlot`` is one job's view of both, bound
to its task (``providers.inflight``) so back-off sleeps give the slot back.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from decomposer.core.errors import InputError

Monotonic = Callable[[], float]
DEFAULT_CONCURRENCY = 4
"""Jobs in flight when no limit is known (nothing to size against) and none is pinned."""
DEFAULT_MAX_CONCURRENCY = 64
HEADROOM = 1.25
"""Requests kept in flight beyond ``λ × W``: latency varies, and the limiter must never wait."""
SPARE = 2
"""Jobs beyond the requests on the wire: a job also claims, reads the cache and logs."""
SMOOTHING = 0.2
"""Weight of each new latency (or token count) in its moving average."""
RATE_WINDOW_S = 10.0
"""Achieved requests/s is counted over this trailing window."""
SLOT_BYTES = 8 * 1024 * 1024
"""Generous memory one job in flight may hold (request, answer, parsed models, connection)."""


@dataclass
class Controller:
    """Sizes the number of jobs in flight from the limit and what the requests show."""

    clock: Monotonic
    rps: float | None = None
    tpm: int | None = None
    pinned: int | None = None
    initial: int = DEFAULT_CONCURRENCY
    minimum: int = 1
    maximum: int = DEFAULT_MAX_CONCURRENCY
    latency_s: float | None = None
    job_s: float | None = None
    """Smoothed time a job keeps its slot busy per request it sends: the wire time plus its
    own work (claim, cache, call log, parsing), less waits for the limiter and back-offs."""
    tokens: float | None = None
    scale: float = 1.0
    """The AIMD factor on the target: halved on trouble, grown back by one slot per round
    trip of successes; 1.0 while nothing is cut."""
    cuts: int = 0
    _out: dict[int, float] = field(default_factory=dict)
    _tickets: int = 0
    _last_cut: float | None = None
    _answers: deque[float] = field(default_factory=deque)
    _sends: deque[float] = field(default_factory=deque)
    _refusals: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.pinned is not None and self.pinned < 1:
            raise InputError("--concurrency must be at least 1")
        if self.maximum < 1:
            raise InputError("--max-concurrency must be at least 1")
        self.minimum = min(self.minimum, self.maximum)
        self.initial = max(self.minimum, min(self.initial, self.maximum))

    @property
    def adaptive(self) -> bool:
        return self.pinned is None and (self.rps is not None or self.tpm is not None)

    @property
    def in_flight(self) -> int:
        """Requests on the wire now (sent, not yet answered)."""
        return len(self._out)

    def sent(self, tokens: int) -> int:
        self._tickets += 1
        now = self.clock()
        self._out[self._tickets] = now
        self._sends.append(now)
        _trim(self._sends, now)
        if self.tokens is None:
            self.tokens = float(max(1, tokens))
        return self._tickets

    def answered(self, ticket: int, tokens: int | None = None) -> None:
        """A 200: its latency and tokens feed the averages; a cut grows back by one slot per
        round trip (``1 / target`` of the factor per ``limit`` successes)."""
        started = self._out.pop(ticket, None)
        now = self.clock()
        self._answers.append(now)
        _trim(self._answers, now)
        if started is not None:
            self.latency_s = _smooth(self.latency_s, now - started)
        if tokens:
            self.tokens = _smooth(self.tokens, float(tokens))
        if self.scale < 1.0:
            target = max(1.0, self._target())
            self.scale = min(1.0, self.scale + 1 / (target * max(1.0, target * self.scale)))

    def throttled(self, ticket: int) -> None:
        """A 429: the provider counts more than we do (jitter, another client, a lower limit)."""
        self._out.pop(ticket, None)
        self._refusals.append(self.clock())
        _trim(self._refusals, self.clock())
        self._cut()

    def timed_out(self, ticket: int) -> None:
        self._out.pop(ticket, None)
        self._refusals.append(self.clock())
        _trim(self._refusals, self.clock())
        self._cut()

    def failed(self, ticket: int) -> None:
        """Another error answer (a 5xx, a 400): no signal about capacity."""
        self._out.pop(ticket, None)

    def job_done(self, busy_s: float, requests: int) -> None:
        """A job gave its slot back after ``busy_s`` of its own time and ``requests`` sent."""
        if requests > 0:
            self.job_s = _smooth(self.job_s, busy_s / requests)

    @property
    def rate_limit(self) -> float | None:
        """The limit in requests/s: ``--rps``, or ``--tpm`` over the average tokens a request
        uses, whichever is lower."""
        rates = []
        if self.rps is not None:
            rates.append(self.rps)
        if self.tpm is not None and self.tokens:
            rates.append(self.tpm / 60 / self.tokens)
        return min(rates) if rates else None

    @property
    def wire_s(self) -> float | None:
        """``W``: the smoothed latency, or twice the mean age of the requests out, or the time
        a job is busy per request, whichever is largest."""
        now = self.clock()
        ages = [now - t for t in self._out.values()]
        out = 2 * sum(ages) / len(ages) if ages else 0.0
        if self.latency_s is None and not out:
            return None
        return max(self.latency_s or 0.0, out, self.job_s or 0.0)

    @property
    def limit(self) -> int:
        """Jobs allowed in flight now."""
        if self.pinned is not None:
            return self.pinned
        return max(self.minimum, min(self.maximum, math.ceil(self._target() * self.scale - 1e-6)))

    def _target(self) -> float:
        """Little's law before any cut: ``⌈λ × W × HEADROOM⌉ + SPARE`` (at least the initial
        number until the first answer), or the initial number when no limit is known."""
        rate, wire = self.rate_limit, self.wire_s
        if not self.adaptive or rate is None or wire is None:
            return float(self.initial)
        little = math.ceil(rate * wire * HEADROOM - 1e-6) + SPARE
        return float(little if self.latency_s is not None else max(self.initial, little))

    def rate(self) -> float:
        """Requests answered per second over the trailing window (or since the first)."""
        now = self.clock()
        _trim(self._answers, now)
        if len(self._answers) < 2:
            return 0.0
        span = now - max(self._answers[0], now - RATE_WINDOW_S)
        return len(self._answers) / span if span > 0 else 0.0

    def admitted(self) -> float:
        """Requests/s the provider took (sent, less those refused) over the trailing window,
        or since the first request."""
        now = self.clock()
        _trim(self._sends, now)
        _trim(self._refusals, now)
        if not self._sends:
            return 0.0
        span = now - max(self._sends[0], now - RATE_WINDOW_S)
        taken = len(self._sends) - len(self._refusals)
        return max(0, taken) / span if span > 0 else 0.0

    def _cut(self) -> None:
        """Halve, but once per round trip (a burst of 429s is one signal, not ten), and never
        below the fraction of the limit the provider still admits: with a known limit a stray
        429 is mostly arrival jitter, which the rate limiter's own back-off absorbs, and a
        deeper cut would only lose rate. When the provider really takes less than the limit,
        the admitted rate falls and the cut follows it."""
        if self.pinned is not None:
            return
        now = self.clock()
        round_trip = self.wire_s or 1.0
        if self._last_cut is not None and now - self._last_cut < round_trip:
            return
        self._last_cut = now
        self.cuts += 1
        rate = self.rate_limit
        kept = min(1.0, self.admitted() / rate) if self.adaptive and rate else 0.0
        floor = self.minimum / max(1.0, self._target())
        self.scale = max(floor, self.scale / 2, min(self.scale, kept))


def _trim(stamps: deque[float], now: float) -> None:
    while stamps and stamps[0] < now - RATE_WINDOW_S:
        stamps.popleft()


def _smooth(average: float | None, value: float) -> float:
    return value if average is None else average + SMOOTHING * (value - average)


def memory_bound(available: int | None = None) -> int:
    """Jobs the free memory can hold at ``SLOT_BYTES`` each (unbounded when unknown)."""
    if available is None:
        available = _available_bytes()
    return max(1, available // SLOT_BYTES) if available else 1 << 30


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def controller_for(
    clock: Monotonic,
    *,
    rps: float | None,
    tpm: int | None,
    concurrency: int | None,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> Controller:
    """The CLI's controller: pinned by ``--concurrency``, else sized from the limits, bounded by
    ``--max-concurrency`` and by free memory."""
    if max_concurrency < 1:
        raise InputError("--max-concurrency must be at least 1")
    return Controller(
        clock,
        rps=rps,
        tpm=tpm,
        pinned=concurrency,
        maximum=min(max_concurrency, memory_bound()),
    )


class Gate:
    """The adjustable semaphore a job holds while it runs: at most ``controller.limit`` at once.

    The limit moves with time (ages grow), so waiters also re-check every ``tick`` seconds. A job
    coming back from a back-off pause goes before new jobs.
    """

    def __init__(self, controller: Controller, tick: float = 0.1) -> None:
        self.controller = controller
        self.held = 0
        self.peak = 0
        self._resuming = 0
        self._tick = tick
        self._waiters: set[asyncio.Future[None]] = set()

    async def acquire(self, *, resuming: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self._resuming += resuming
        try:
            while not self._free(resuming):
                woken = loop.create_future()
                self._waiters.add(woken)
                try:
                    await asyncio.wait_for(woken, self._tick)
                except TimeoutError:
                    pass
                finally:
                    self._waiters.discard(woken)
        finally:
            self._resuming -= resuming
        self.held += 1
        self.peak = max(self.peak, self.held)

    def release(self) -> None:
        self.held -= 1
        self.notify()

    def notify(self) -> None:
        """Wake the waiters to check the limit again (it may have grown, or a slot came free)."""
        for woken in self._waiters:
            if not woken.done():
                woken.set_result(None)

    def _free(self, resuming: bool) -> bool:
        waiting_back = 0 if resuming else self._resuming
        return self.held + waiting_back < self.controller.limit


@dataclass
class JobSlot:
    """One job's hold on the gate: reports its requests to the controller, and gives the gate
    back while it backs off (``paused``). Created holding (the dispatcher acquired for it); on
    ``done`` it reports the time it kept the slot busy, less limiter waits and pauses."""

    gate: Gate
    holding: bool = True
    pauses: int = 0
    requests: int = 0
    _idle_s: float = 0.0
    _queued_at: float | None = None
    _started: float = 0.0

    def __post_init__(self) -> None:
        self._started = self.controller.clock()

    @property
    def controller(self) -> Controller:
        return self.gate.controller

    def queued(self) -> None:
        self._queued_at = self.controller.clock()

    def sent(self, tokens: int) -> int:
        ticket = self.controller.sent(tokens)
        self.requests += 1
        if self._queued_at is not None:
            self._idle_s += self.controller.clock() - self._queued_at
            self._queued_at = None
        self.gate.notify()
        return ticket

    def answered(self, ticket: int, status: int, tokens: int | None) -> None:
        if status == 200:
            self.controller.answered(ticket, tokens)
        elif status == 429:
            self.controller.throttled(ticket)
        else:
            self.controller.failed(ticket)
        self.gate.notify()

    def timed_out(self, ticket: int) -> None:
        self.controller.timed_out(ticket)
        self.gate.notify()

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        self.pauses += 1
        self._release()
        since = self.controller.clock()
        yield
        await self.gate.acquire(resuming=True)
        self._idle_s += self.controller.clock() - since
        self.holding = True

    def done(self) -> None:
        """The job is over: report its busy time and give the gate back."""
        if self.requests:
            busy = self.controller.clock() - self._started - self._idle_s
            self.controller.job_done(max(0.0, busy), self.requests)
        self._release()

    def _release(self) -> None:
        """Give the gate back (once; a cancelled pause has already)."""
        if self.holding:
            self.holding = False
            self.gate.release()
