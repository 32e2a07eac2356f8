"""Adaptive concurrency: the controller on a simulated clock (latency steps, a 429 burst,
recovery, bounds, pinning), a retry's back-off giving its slot to another job, and the progress
bar's in-flight and rate figures. Nothing here reads the wall clock."""

from __future__ import annotations

import asyncio
import io
import json
import math
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from conftest import BAD_QUOTE, CLI, PROFILE_NONE, SECRET, capability, ok
from decomposer.calls.caller import RetryPolicy
from decomposer.calls.prompts import load_prompt
from decomposer.core.errors import InputError
from decomposer.extraction.concurrency import (
    HEADROOM,
    SLOT_BYTES,
    SPARE,
    Controller,
    controller_for,
    memory_bound,
)
from decomposer.extraction.finalize import RunProgress
from decomposer.extraction.run import run_extraction
from decomposer.extraction.task import ExtractionCaller
from decomposer.providers.base import ProviderConfig
from decomposer.providers.pricing import load_prices
from decomposer.store import open_store


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def little(rps: float, latency: float) -> int:
    return math.ceil(rps * latency * HEADROOM) + SPARE


class Sim:
    """A limiter sending one request every 1/rps seconds while the controller allows it, and
    a provider answering each after ``latency`` or refusing every ``refuse_every``-th at once
    with a 429 (or a timeout). Jobs in flight are the requests out (no store work here)."""

    def __init__(self, c: Controller, clock: SimClock) -> None:
        self.c, self.clock = c, clock
        self.out: list[tuple[float, int]] = []
        self.sent = 0

    def run(
        self,
        rps: float,
        latency: float,
        seconds: float,
        *,
        refuse_every: int = 0,
        timeouts: bool = False,
    ) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now += 1 / rps
            for due, ticket in [o for o in self.out if o[0] <= self.clock.now]:
                self.out.remove((due, ticket))
                self.c.answered(ticket, 1000)
            if len(self.out) < self.c.limit:
                ticket = self.c.sent(1000)
                self.sent += 1
                if refuse_every and self.sent % refuse_every == 0:
                    (self.c.timed_out if timeouts else self.c.throttled)(ticket)
                else:
                    self.out.append((self.clock.now + latency, ticket))

    def drain(self) -> None:
        """Answer what is still out, each at its time."""
        for due, ticket in sorted(self.out):
            self.clock.now = max(self.clock.now, due)
            self.c.answered(ticket, 1000)
        self.out.clear()


def simulate(c: Controller, clock: SimClock, rps: float, latency: float, seconds: float) -> None:
    """One phase at a fixed latency, drained at its end."""
    sim = Sim(c, clock)
    sim.run(rps, latency, seconds)
    sim.drain()


def test_latency_step_up_then_down_follows_littles_law():
    clock = SimClock()
    c = Controller(clock, rps=5)
    simulate(c, clock, 5, 1.0, 30)
    assert c.limit == little(5, 1.0)
    simulate(c, clock, 5, 4.0, 60)
    assert c.limit == little(5, 4.0), "a slower provider gets more requests in flight"
    simulate(c, clock, 5, 0.5, 60)
    assert c.limit == little(5, 0.5), "and fewer again when it speeds up"


def test_requests_out_raise_the_limit_before_their_answers_arrive():
    """At start (nothing answered yet) the limit grows with the age of what is out, so the
    limiter is never left waiting for a job during the first round trip."""
    clock = SimClock()
    c = Controller(clock, rps=5)
    assert c.limit == c.initial
    for _ in range(40):  # 8 s of requests at 5/s, none answered
        clock.now += 0.2
        c.sent(1000)
        assert c.limit >= c.in_flight, "the limit never holds back the next request"
    assert c.limit > c.initial


def test_429s_cut_back_to_what_the_provider_takes_then_recover_additively():
    clock = SimClock()
    c = Controller(clock, rps=5)
    sim = Sim(c, clock)
    sim.run(5, 4.0, 60)
    before = c.limit
    assert little(5, 4.0) <= before <= little(5, 4.5)
    sim.run(5, 4.0, 20, refuse_every=2)  # the provider takes half the limit
    assert c.cuts >= 1
    cut = c.limit
    assert before * 0.4 <= cut <= before * 0.6, "halved, not below what it still took"
    sim.run(5, 4.0, 12)  # three round trips without a 429
    assert cut < c.limit < before, "grown back by about a slot per round trip, not at once"
    sim.run(5, 4.0, 600)
    assert c.scale == 1.0 and c.limit == before


def test_a_burst_of_429s_is_one_signal_and_stray_ones_cost_no_rate():
    clock = SimClock()
    c = Controller(clock, rps=5)
    sim = Sim(c, clock)
    sim.run(5, 4.0, 60)
    before = c.limit
    tickets = [c.sent(1000) for _ in range(10)]
    clock.now += 0.1
    for ticket in tickets:
        c.throttled(ticket)
    assert c.cuts == 1, "a burst is one signal, not ten"
    assert c.limit >= before - 1, "the provider still takes the limit: jitter, not overload"
    unlimited = Controller(clock)
    unlimited.throttled(unlimited.sent(1000))
    assert unlimited.limit == unlimited.initial // 2, "without a limit to size against: halve"


def test_timeouts_cut_back_like_429s():
    clock = SimClock()
    c = Controller(clock, rps=5)
    sim = Sim(c, clock)
    sim.run(5, 4.0, 60)
    before = c.limit
    sim.run(5, 4.0, 20, refuse_every=2, timeouts=True)
    assert c.cuts >= 1 and c.limit <= before * 0.6


def test_bounds_and_pinning():
    clock = SimClock()
    capped = Controller(clock, rps=100, maximum=10)
    simulate(capped, clock, 100, 4.0, 10)
    assert capped.limit == 10
    floor = Controller(clock, rps=5, minimum=1)
    for _ in range(20):
        clock.now += 100
        floor.throttled(floor.sent(1000))
    assert floor.limit == 1
    pinned = Controller(clock, rps=5, pinned=7)
    simulate(pinned, clock, 5, 4.0, 30)
    pinned.throttled(pinned.sent(1000))
    assert pinned.limit == 7 and pinned.cuts == 0
    unlimited = Controller(clock)
    simulate(unlimited, clock, 5, 4.0, 30)
    assert unlimited.limit == 4, "no limit known: the default"
    with pytest.raises(InputError, match="--concurrency"):
        Controller(clock, pinned=0)
    with pytest.raises(InputError, match="--max-concurrency"):
        controller_for(clock, rps=5, tpm=None, concurrency=None, max_concurrency=0)


def test_a_tokens_per_minute_limit_becomes_requests_per_second():
    clock = SimClock()
    c = Controller(clock, tpm=60_000)
    simulate(c, clock, 1, 4.0, 60)  # 1,000 tokens per request: 1 request/s
    assert c.rate_limit == pytest.approx(1.0)
    assert c.limit == little(1, 4.0)


def test_achieved_rate_is_counted_over_the_window():
    clock = SimClock()
    c = Controller(clock, rps=5)
    simulate(c, clock, 5, 1.0, 30)
    assert c.rate() == pytest.approx(5, rel=0.1)


def test_memory_bounds_the_maximum():
    assert memory_bound(10 * SLOT_BYTES) == 10
    controller = controller_for(SimClock(), rps=5, tpm=None, concurrency=None)
    assert controller.maximum <= memory_bound()


# --- the running loop ------------------------------------------------------------------------

PAGES = 4


@pytest.fixture
def pages(cli: CLI, tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    for i in range(PAGES):
        (folder / f"p{i}.md").write_text(
            f"# Page {i}\n\nFeature number {i} lets teams do thing {i} quickly and well.\n"
        )
    assert cli("tool", "add", "Acme")[0] == 0
    assert cli("ingest", "acme", str(folder))[0] == 0


def page_of(request: httpx.Request) -> int:
    text = json.loads(request.content)["messages"][1]["content"]
    return next(k for k in range(PAGES) if f"Feature number {k} " in text)


def grounded(page: int) -> httpx.Response:
    quote = f"Feature number {page} lets teams do thing {page} quickly"
    return ok({"capabilities": [capability(f"Thing {page}", quote)], "profile": PROFILE_NONE})


class Provider:
    """An instrumented fake provider: counts requests in flight and records their order."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.seen: list[int] = []
        self.arrived = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            page = page_of(request)
            self.seen.append(page)
            self.arrived.set()
            await asyncio.sleep(0)
            if self.seen.count(page) == 1 and page == 0:
                return httpx.Response(503, json={"message": "busy"})
            return grounded(page)
        finally:
            self.in_flight -= 1


def caller_for(settings, http: httpx.AsyncClient, sleep) -> ExtractionCaller:
    return ExtractionCaller(
        cfg=ProviderConfig("mistral", "mistral-small-latest", "json_schema"),
        key=SECRET,
        prompt=load_prompt(),
        store=open_store(settings.database_url),
        http=http,
        prices=load_prices(),
        policy=RetryPolicy(),
        sleep=sleep,
    )


async def test_a_retry_backing_off_gives_its_slot_to_another_job(pages, settings):
    """One slot (pinned): the first job's request gets a 503 and backs off. Its back-off only
    ends once another job's request has reached the provider — which can only happen if the
    backing-off job gave the slot back. The provider never sees two requests at once."""
    provider = Provider()
    backoffs: list[int] = []

    async def sleep(_seconds: float) -> None:
        provider.arrived.clear()
        backoffs.append(len(provider.seen))
        await asyncio.wait_for(provider.arrived.wait(), 10)

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        caller = caller_for(settings, http, sleep)
        report = await run_extraction(caller, "acme", concurrency=1, pack_tokens=1)
    caller.store.dispose()
    assert report.capabilities == PAGES
    assert provider.seen[0] == 0 and provider.seen[1] != 0, "another job ran in the back-off"
    assert sorted(provider.seen) == [0, 0, 1, 2, 3]
    assert backoffs == [1] and provider.peak == 1


async def test_a_validation_reask_passes_the_slot_like_any_request(pages, settings):
    """A re-ask is reported to the controller as a request of its own (after the rate limiter
    let it go), and the progress reports carry jobs in flight, the limit and the rate."""
    asked: list[int] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        page = page_of(request)
        asked.append(page)
        return ok(BAD_QUOTE) if asked.count(page) == 1 and page == 1 else grounded(page)

    from decomposer.calls.runtime import RunSetup, rate_limited_http
    from decomposer.providers.ratelimit import Limits

    setup = RunSetup(
        cfg=ProviderConfig("mistral", "mistral-small-latest", "json_schema"),
        key=SECRET,
        limits=Limits(rps=1000),
    )
    clock = SimClock()
    controller = Controller(clock, rps=1000)
    reports: list[RunProgress] = []

    def on_progress(p: RunProgress) -> None:
        clock.now += 1
        reports.append(RunProgress(**vars(p)))

    transport = httpx.MockTransport(answer)
    async with rate_limited_http(settings, setup, transport=transport) as http:
        caller = caller_for(settings, http, asyncio.sleep)
        report = await run_extraction(
            caller, "acme", pack_tokens=1, on_progress=on_progress, controller=controller
        )
    caller.store.dispose()
    assert report.capabilities == PAGES
    assert len(asked) == PAGES + 1
    assert controller._tickets == PAGES + 1, "every request, the re-ask too, was counted"
    assert controller.in_flight == 0
    assert max(r.in_flight for r in reports) >= 1
    assert all(r.allowed >= 1 and r.rate_limit == 1000 for r in reports)
    assert reports[-1].rate > 0


def test_the_progress_bar_shows_in_flight_and_rate():
    from decomposer.cli.extract import _progress_bar, flow_text

    progress = RunProgress(total=10, done=3, in_flight=3, allowed=26, rate=4.93, rate_limit=5.0)
    assert flow_text(progress) == "3/26 in flight · 4.93/5 req/s"
    assert flow_text(RunProgress(total=1, in_flight=1, allowed=4)) == "1/4 in flight · 0.00 req/s"
    with _progress_bar() as (bar, task_for):
        bar.update(task_for(10), completed=3, flow=flow_text(progress))
        table = bar.make_tasks_table(bar.tasks)
    console = Console(file=io.StringIO(), width=300)
    console.print(table)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "3/26 in flight · 4.93/5 req/s" in shown
