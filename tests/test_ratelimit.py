"""The per-key limiter: moving windows, token accounting, 429 back-off, shared Redis storage."""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx
import pytest
import respx

from conftest import GOOD, MISTRAL_URL, ok
from decomposer.providers.ratelimit import (
    CATCH_UP_S,
    HEADROOM,
    Limits,
    RateLimitedTransport,
    RateLimiter,
    SyncRateLimiter,
    estimate_request_tokens,
    limiter_key,
    open_storage,
)


class Stop(Exception):
    pass


def redis_url() -> str | None:
    url = os.environ.get("DECOMPOSER_TEST_REDIS_URL")
    if url is None and os.environ.get("DECOMPOSER_REQUIRE_SERVICES"):
        pytest.fail("DECOMPOSER_TEST_REDIS_URL is required when DECOMPOSER_REQUIRE_SERVICES=1")
    return url


def never_more_than(
    stamps: list[float], limit: int, window: float = 1.0, slack: float = 1.0
) -> bool:
    """No ``limit + 1`` stamps within ``window × slack`` seconds of each other."""
    ordered = sorted(stamps)
    return all(
        ordered[i + limit] - ordered[i] >= window * slack for i in range(len(ordered) - limit)
    )


async def test_requests_per_second_hold_over_any_window():
    """The limiter's own schedule (the start it grants each request, on its clock) is checked,
    not a timestamp taken after ``acquire`` returns: on a loaded machine those bunch up."""
    limiter = RateLimiter(Limits(rps=60), f"k-{uuid.uuid4()}")
    stamps = []
    for _ in range(100):
        await limiter.acquire(10)
        stamps.append(limiter._last_start)
    assert never_more_than(stamps, 60, slack=1.0)


async def test_tokens_per_minute_make_the_next_request_wait():
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise Stop

    limiter = RateLimiter(Limits(tpm=1000), f"k-{uuid.uuid4()}", sleep=sleep)
    await limiter.acquire(400)
    await limiter.acquire(400)
    with pytest.raises(Stop):
        await limiter.acquire(400)
    assert 55 < waits[0] <= 60


async def test_usage_above_the_estimate_is_charged():
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise Stop

    limiter = RateLimiter(Limits(tpm=1000), f"k-{uuid.uuid4()}", sleep=sleep)
    await limiter.acquire(300)
    await limiter.settle(estimated=300, actual=900)
    with pytest.raises(Stop):
        await limiter.acquire(200)
    assert waits


async def test_429_cools_down_for_retry_after_and_slows_the_pace():
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 4))
        now[0] += seconds

    limiter = RateLimiter(Limits(rps=10), f"k-{uuid.uuid4()}", sleep=sleep, clock=lambda: now[0])
    limiter.throttle(5.0)
    await limiter.acquire(1)
    assert waits == [5.0] and limiter.pace == pytest.approx(0.9)
    await limiter.acquire(1)
    assert waits[-1] == pytest.approx(1 / (10 * HEADROOM * 0.9), abs=1e-3)
    await limiter.settle(1, 1)
    assert limiter.pace == pytest.approx(0.99)


async def test_waiting_coroutines_leave_one_by_one():
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)
        now[0] += seconds

    limiter = RateLimiter(Limits(rps=10), f"k-{uuid.uuid4()}", sleep=sleep, clock=lambda: now[0])
    await asyncio.gather(*(limiter.acquire(1) for _ in range(5)))
    gap = 1 / (10 * HEADROOM)
    assert waits == pytest.approx([gap] * 4)  # the first goes at once, then one per gap
    assert now[0] == pytest.approx(4 * gap)


async def test_a_stalled_loop_does_not_release_a_burst():
    now = [0.0]
    limiter = RateLimiter(Limits(rps=10), f"k-{uuid.uuid4()}", clock=lambda: now[0])
    await limiter.acquire(1)
    now[0] += 5.0  # the event loop was busy for five seconds
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter.sleep = sleep
    for _ in range(3):
        await limiter.acquire(1)
    gap = 1 / (10 * HEADROOM)
    # one goes at once, the next a gap less the small catch-up later, then the schedule
    # resumes: no burst
    assert waits == pytest.approx([gap - CATCH_UP_S, gap])


async def test_transport_limits_every_request_and_reads_usage_and_429s():
    limiter = RateLimiter(Limits(rps=100, tpm=1_000_000), f"k-{uuid.uuid4()}")
    transport = RateLimitedTransport(httpx.AsyncHTTPTransport(), limiter)
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(
            side_effect=[
                httpx.Response(429, headers={"Retry-After": "0"}, json={}),
                ok(GOOD, prompt_tokens=700, completion_tokens=300),
            ]
        )
        async with httpx.AsyncClient(transport=transport) as http:
            first = await http.post(MISTRAL_URL, json={"messages": [], "max_tokens": 10})
            second = await http.post(MISTRAL_URL, json={"messages": [], "max_tokens": 10})
    assert (first.status_code, second.status_code) == (429, 200)
    assert limiter.throttled == 1
    assert second.json()["usage"]["total_tokens"] == 1000


def test_request_estimate_counts_messages_schema_and_expected_output():
    small = estimate_request_tokens(b'{"messages": [{"content": "hi"}], "max_tokens": 100}')
    big = estimate_request_tokens(
        b'{"messages": [{"content": "' + b"word " * 2000 + b'"}], "max_tokens": 100}'
    )
    assert 100 <= small < 150 and big > small + 1500


def test_limiter_key_hides_the_api_key():
    key = limiter_key("mistral", "sk-very-secret")
    assert "sk-very-secret" not in key and key.startswith("decomposer:mistral:")
    assert key != limiter_key("mistral", "another-key")


def test_invalid_limits_are_refused():
    from decomposer.core.errors import ConfigError

    with pytest.raises(ConfigError):
        Limits(rps=0)
    with pytest.raises(ConfigError):
        Limits(tpm=0)
    with pytest.raises(ConfigError):
        open_storage("memcached://x")


async def test_two_workers_share_one_budget_in_redis():
    url = redis_url()
    if url is None:
        pytest.skip("Redis not configured: set DECOMPOSER_TEST_REDIS_URL")
    key = f"test-{uuid.uuid4()}"
    a = RateLimiter(Limits(rps=20), key, open_storage(url))
    b = RateLimiter(Limits(rps=20), key, open_storage(url))
    stamps = AdmissionLog(url, key)
    try:
        for i in range(50):
            limiter = a if i % 2 else b
            await limiter.acquire(1)
            stamps.record()
    finally:
        await a.aclose()
        await b.aclose()
        stamps.close()
    # Counted where the budget lives: the admission times the shared Redis window recorded.
    # Each limiter alone paces at 19.6/s, so alternating they would reach ~39/s without it.
    assert len(stamps.seen) == 50
    assert never_more_than(stamps.seen, 20)


class AdmissionLog:
    """Reads the newest entry of the Redis moving window after each grant: the timestamp the
    window admitted that request at, so client-side scheduling delays cannot move it."""

    def __init__(self, url: str, key: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.key = key
        self.seen: list[float] = []

    def record(self) -> None:
        [name] = list(self.client.scan_iter(f"*{self.key}*"))
        self.seen.append(float(self.client.lindex(name, 0)))  # type: ignore[arg-type]

    def close(self) -> None:
        self.client.close()


class FakeClock:
    """A monotonic clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_sync_limiter_spaces_requests_and_waits_out_a_429():
    """The synchronous twin (embedding requests): even spacing at HEADROOM, then Retry-After."""
    clock = FakeClock()
    limiter = SyncRateLimiter(
        Limits(rps=50), limiter_key("openai", uuid.uuid4().hex), sleep=clock.sleep, clock=clock
    )
    for _ in range(3):
        limiter.acquire(10)
    gap = round(1 / (50 * HEADROOM), 6)
    assert clock.sleeps == [gap, gap]
    limiter.throttle(2.0)
    limiter.acquire(10)
    assert clock.sleeps[2] == pytest.approx(2.0)
