"""Never pay twice: per-request retries under Instructor's re-asks, the answer journal, the
shared 429 back-off, unvalidated answers not served from cache, --refresh, pending call rows."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select

from conftest import BAD_QUOTE, GOOD, MISTRAL_URL, SECRET, ok
from decomposer.calls.caller import RetryPolicy
from decomposer.calls.prompts import load_prompt
from decomposer.core.errors import ProviderError
from decomposer.extraction.task import ExtractionCaller
from decomposer.providers.base import ProviderConfig
from decomposer.providers.pricing import load_prices
from decomposer.providers.transport import Backoff, RetryingTransport, tally
from decomposer.store.models import CachedResponse, LLMCall, RawAnswer
from test_llm import CONTEXT

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def make(store, http, fake_sleep, *, refresh: bool = False, **policy: Any) -> ExtractionCaller:
    return ExtractionCaller(
        cfg=ProviderConfig("mistral", "mistral-small-latest", "json_schema"),
        key=SECRET,
        prompt=load_prompt(),
        store=store,
        http=http,
        prices=load_prices(),
        policy=RetryPolicy(**policy),
        sleep=fake_sleep,
        refresh=refresh,
    )


def rows(store, model: Any = LLMCall) -> list[Any]:
    with store.transaction() as s:
        return list(s.scalars(select(model)))


def throttled(seconds: str = "3") -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": seconds}, json={"message": "slow down"})


async def test_429_in_a_reask_repeats_only_that_request(store, fake_sleep, sleeps):
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(side_effect=[ok(BAD_QUOTE), throttled(), ok(GOOD)])
        async with httpx.AsyncClient() as http:
            result = await make(store, http, fake_sleep).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    bodies = [json.loads(c.request.content)["messages"] for c in route.calls]
    assert route.call_count == 3 and result.validated
    assert len(bodies[0]) == 2, "the first question was sent once"
    assert bodies[1] == bodies[2] and len(bodies[1]) > 2, "only the re-ask was repeated"
    assert sleeps == [3.0]
    [row] = rows(store)
    assert (row.outcome, row.attempts) == ("ok", 3)
    assert rows(store, RawAnswer) == [], "the journal is dropped once the call has its answer"


async def test_paid_answers_are_replayed_when_a_failed_call_resumes(store, fake_sleep):
    down = httpx.Response(503, json={})
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(side_effect=[ok(BAD_QUOTE), down, down])
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError, match="HTTP 503"):
                await make(store, http, fake_sleep, attempts=2).extract(
                    CONTEXT, run_id=None, chunk_id="c1"
                )
    assert len(rows(store, RawAnswer)) == 1, "the paid first answer is kept"
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(side_effect=[ok(GOOD)])
        async with httpx.AsyncClient() as http:
            result = await make(store, http, fake_sleep).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    assert route.call_count == 1, "only the re-ask is bought; the first answer is replayed"
    assert len(json.loads(route.calls[0].request.content)["messages"]) > 2
    assert result.validated and (result.input_tokens, result.output_tokens) == (300, 100)
    assert [r.outcome for r in rows(store)] == ["error", "ok"]


async def test_a_429_makes_other_requests_wait_without_a_configured_limit(fake_sleep, sleeps):
    answers = iter([throttled("5"), httpx.Response(200, json={})])
    transport = RetryingTransport(
        httpx.MockTransport(lambda _request: next(answers)),
        Backoff(),
        sleep=fake_sleep,
        clock=lambda: NOW,
    )
    request = httpx.Request("POST", MISTRAL_URL, json={})
    with tally() as counts:
        await transport.handle_async_request(request)
        assert (counts.requests, counts.throttled) == (2, 1)
    assert sleeps == [5.0]
    answers = iter([httpx.Response(200, json={})])
    await transport.handle_async_request(request)
    assert sleeps == [5.0, 5.0], "a new request waits out the shared back-off before it goes"


async def test_unvalidated_answer_is_stored_but_asked_again_next_time(store, fake_sleep):
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(BAD_QUOTE))
        async with httpx.AsyncClient() as http:
            first = await make(store, http, fake_sleep).extract(CONTEXT, run_id=None, chunk_id="c1")
    assert not first.validated
    [cached] = rows(store, CachedResponse)
    assert not cached.validated
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        async with httpx.AsyncClient() as http:
            again = await make(store, http, fake_sleep).extract(CONTEXT, run_id=None, chunk_id="c1")
    assert route.call_count == 1 and again.validated and not again.cache_hit
    [cached] = rows(store, CachedResponse)
    assert cached.validated


async def test_refresh_asks_again_and_replaces_the_cached_answer(store, fake_sleep):
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        async with httpx.AsyncClient() as http:
            await make(store, http, fake_sleep).extract(CONTEXT, run_id=None, chunk_id="c1")
    newer = {**GOOD, "capabilities": GOOD["capabilities"][:1]}
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(newer))
        async with httpx.AsyncClient() as http:
            result = await make(store, http, fake_sleep, refresh=True).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    assert route.call_count == 1 and not result.cache_hit
    [cached] = rows(store, CachedResponse)
    assert len(json.loads(cached.payload)["capabilities"]) == 1


async def test_call_row_is_pending_while_its_requests_are_in_flight(store, fake_sleep):
    seen: list[tuple[str, int]] = []

    def answer(_request: httpx.Request) -> httpx.Response:
        seen.extend((r.outcome, r.attempts) for r in rows(store))
        return [ok(BAD_QUOTE), ok(GOOD)][len(seen) - 1]

    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(side_effect=answer)
        async with httpx.AsyncClient() as http:
            await make(store, http, fake_sleep).extract(CONTEXT, run_id=None, chunk_id="c1")
    assert seen == [("pending", 1), ("pending", 2)], "each request is counted before it goes"
    [row] = rows(store)
    assert (row.outcome, row.attempts) == ("ok", 2)


async def test_concurrent_calls_keep_their_own_counts(store, fake_sleep):
    text = CONTEXT["chunks"][0]["text"] + " More."
    other = {**CONTEXT, "chunks": [{**CONTEXT["chunks"][0], "id": "c2", "text": text}]}
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        async with httpx.AsyncClient() as http:
            caller = make(store, http, fake_sleep)
            a, b = await asyncio.gather(
                caller.extract(CONTEXT, run_id=None, chunk_id="c1"),
                caller.extract(other, run_id=None, chunk_id="c2"),
            )
    assert (a.attempts, b.attempts) == (1, 1)
