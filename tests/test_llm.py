"""ModelCaller against respx-mocked providers: request shapes, retries, re-asks, cache, cost."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select

from conftest import (
    BAD_QUOTE,
    DOC,
    GOOD,
    MISTRAL_URL,
    OPENAI_URL,
    SECRET,
    completion,
    ok,
)
from decomposer.calls.caller import RetryPolicy
from decomposer.calls.prompts import load_prompt
from decomposer.core.errors import ProviderError
from decomposer.extraction.task import ExtractionCaller
from decomposer.providers.base import ProviderConfig
from decomposer.providers.pricing import load_prices
from decomposer.store.models import LLMCall

CONTEXT = {
    "tool": "AcmeDB",
    "chunks": [{"id": "c1", "source": "acme.md", "heading": "AcmeDB", "text": DOC}],
}
URLS = {"mistral": MISTRAL_URL, "openai": OPENAI_URL}


def caller(store, http, fake_sleep, provider="mistral", mode="json_schema", **policy: Any):
    model = {"mistral": "mistral-small-latest", "openai": "gpt-4o-mini"}[provider]
    return ExtractionCaller(
        cfg=ProviderConfig(provider, model, mode),
        key=SECRET,
        prompt=load_prompt(),
        store=store,
        http=http,
        prices=load_prices(),
        policy=RetryPolicy(**policy),
        sleep=fake_sleep,
    )


def calls(store) -> list[LLMCall]:
    with store.transaction() as s:
        return list(s.scalars(select(LLMCall).order_by(LLMCall.id)))


@pytest.mark.parametrize("provider", ["mistral", "openai"])
@pytest.mark.parametrize("mode", ["json_schema", "tools"])
async def test_request_shape_and_logged_call(store, fake_sleep, provider, mode):
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(URLS[provider]).mock(return_value=ok(GOOD, tools=mode == "tools"))
        async with httpx.AsyncClient() as http:
            result = await caller(store, http, fake_sleep, provider, mode).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    body = json.loads(route.calls.last.request.content)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {SECRET}"
    assert body["model"] == ("mistral-small-latest" if provider == "mistral" else "gpt-4o-mini")
    assert body["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "untrusted data" in body["messages"][0]["content"]
    assert "AcmeDB" in body["messages"][0]["content"]
    assert DOC.strip() in body["messages"][1]["content"]
    if mode == "json_schema":
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        assert fmt["json_schema"]["name"] == "Extraction"
        assert "capabilities" in fmt["json_schema"]["schema"]["properties"]
        assert fmt["json_schema"].get("strict") is (True if provider == "mistral" else None)
    else:
        assert body["tools"][0]["function"]["name"] == "Extraction"
        assert "tool_choice" in body
    assert [c.name for c in result.extraction.capabilities] == [
        "Point-in-time recovery",
        "Synchronous replication",
    ]
    assert result.validated and not result.cache_hit
    assert (result.input_tokens, result.output_tokens, result.attempts) == (300, 100, 1)
    price = {"mistral": (0.1, 0.3), "openai": (0.15, 0.6)}[provider]
    assert result.cost_usd == pytest.approx((300 * price[0] + 100 * price[1]) / 1e6)
    [row] = calls(store)
    assert (row.provider, row.mode, row.outcome, row.attempts) == (provider, mode, "ok", 1)
    assert row.prompt_version == "extract/v1" and len(row.request_hash) == 64


async def test_document_with_template_syntax_is_sent_literally(store, fake_sleep):
    text = DOC + "\nUse {{ secret }} and {% if x %} in templates.\n"
    context = {
        "tool": "AcmeDB",
        "chunks": [{"id": "c", "source": "a", "heading": "", "text": text}],
    }
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        async with httpx.AsyncClient() as http:
            await caller(store, http, fake_sleep).extract(context, run_id=None, chunk_id="c")
    user = json.loads(route.calls.last.request.content)["messages"][1]["content"]
    assert "Use {{ secret }} and {% if x %} in templates." in user


@pytest.mark.parametrize(
    ("first", "expected_sleep"),
    [
        (httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "rate"}), 7.0),
        (httpx.Response(500, json={"message": "boom"}), None),
        (httpx.TimeoutException("read timed out"), None),
        (httpx.ConnectError("refused"), None),
    ],
    ids=["429-retry-after", "500", "timeout", "connect-error"],
)
@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_transient_failure_then_success(
    store, fake_sleep, sleeps, provider, first, expected_sleep
):
    with respx.mock() as mock:
        route = mock.post(URLS[provider]).mock(side_effect=[first, ok(GOOD)])
        async with httpx.AsyncClient() as http:
            result = await caller(store, http, fake_sleep, provider).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    assert route.call_count == 2
    assert result.validated and result.attempts == 2
    assert len(sleeps) == 1
    if expected_sleep is not None:
        assert sleeps == [expected_sleep]
    else:
        assert 0 < sleeps[0] <= 60


@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_persistent_failure_is_a_clear_error_and_logged(store, fake_sleep, provider):
    with respx.mock() as mock:
        route = mock.post(URLS[provider]).mock(return_value=httpx.Response(503, json={}))
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError) as info:
                await caller(store, http, fake_sleep, provider, attempts=3).extract(
                    CONTEXT, run_id=None, chunk_id="c1"
                )
    assert route.call_count == 3
    host = {"mistral": "api.mistral.ai", "openai": "api.openai.com"}[provider]
    assert str(info.value).startswith(
        f"{provider} request to {host}/v1/chat/completions failed after 3 attempt(s): HTTP 503"
    )
    assert SECRET not in str(info.value)
    [row] = calls(store)
    assert (row.outcome, row.attempts) == ("error", 3)


async def test_auth_error_is_not_retried(store, fake_sleep):
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=httpx.Response(401, json={}))
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError, match="HTTP 401 — check the API key"):
                await caller(store, http, fake_sleep).extract(CONTEXT, run_id=None, chunk_id="c")
    assert route.call_count == 1


@pytest.mark.parametrize("provider", ["mistral", "openai"])
@pytest.mark.parametrize("mode", ["json_schema", "tools"])
async def test_failing_quote_is_reasked_with_the_error(store, fake_sleep, provider, mode):
    tools = mode == "tools"
    with respx.mock() as mock:
        route = mock.post(URLS[provider]).mock(
            side_effect=[ok(BAD_QUOTE, tools=tools), ok(GOOD, tools=tools)]
        )
        async with httpx.AsyncClient() as http:
            result = await caller(store, http, fake_sleep, provider, mode).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    assert route.call_count == 2
    reask = json.loads(route.calls[1].request.content)["messages"]
    assert "AcmeDB offers 90-day backups" in json.dumps(reask[-1])
    assert "not found verbatim" in json.dumps(reask[-1])
    assert result.validated and result.attempts == 2
    assert result.input_tokens == 600 and result.output_tokens == 200


async def test_invalid_json_then_valid(store, fake_sleep):
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(side_effect=[ok('{"capabilities": [ oops'), ok(GOOD)])
        async with httpx.AsyncClient() as http:
            result = await caller(store, http, fake_sleep).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    assert result.validated and result.attempts == 2


async def test_still_ungrounded_after_reasks_is_kept_flagged(store, fake_sleep):
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(BAD_QUOTE))
        async with httpx.AsyncClient() as http:
            result = await caller(store, http, fake_sleep, reasks=2).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    assert route.call_count == 3
    assert not result.validated
    assert result.extraction.capabilities[0].evidence == ["AcmeDB offers 90-day backups"]
    assert calls(store)[0].outcome == "ungrounded"


async def test_invalid_json_every_time_is_a_clear_error(store, fake_sleep):
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok("not json at all"))
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError, match="without the expected structure"):
                await caller(store, http, fake_sleep, attempts=2).extract(
                    CONTEXT, run_id=None, chunk_id="c1"
                )


@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_response_without_tool_call_is_a_clear_error(store, fake_sleep, provider):
    body = completion(GOOD)
    body["choices"][0]["message"] = {"role": "assistant", "content": "I cannot help."}
    with respx.mock() as mock:
        route = mock.post(URLS[provider]).mock(return_value=httpx.Response(200, json=body))
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError, match="without the expected structure"):
                await caller(store, http, fake_sleep, provider, "tools", attempts=2).extract(
                    CONTEXT, run_id=None, chunk_id="c1"
                )
    assert route.call_count <= 3, "Instructor's re-asks only: no blind whole-call retries"


async def test_truncated_output_fails_at_the_users_limit(store, fake_sleep):
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(
            side_effect=[ok(GOOD, finish_reason="length"), ok(GOOD)]
        )
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError, match="cut off at 4096 output tokens") as info:
                await caller(store, http, fake_sleep).extract(CONTEXT, run_id=None, chunk_id="c1")
    assert [json.loads(c.request.content)["max_tokens"] for c in route.calls] == [4096]
    assert "--grow-max-tokens" in (info.value.hint or "")
    [row] = calls(store)
    assert (row.outcome, row.attempts) == ("error", 1)


async def test_grow_max_tokens_doubles_the_budget_when_asked(store, fake_sleep):
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(
            side_effect=[ok(GOOD, finish_reason="length"), ok(GOOD)]
        )
        async with httpx.AsyncClient() as http:
            result = await caller(store, http, fake_sleep, grow_max_tokens=True).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    limits = [json.loads(c.request.content)["max_tokens"] for c in route.calls]
    assert limits == [4096, 8192]
    assert result.validated


async def test_truncated_output_at_the_cap_is_a_clear_error(store, fake_sleep):
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(GOOD, finish_reason="length"))
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError, match="cut off at 8192 output tokens"):
                await caller(
                    store, http, fake_sleep, grow_max_tokens=True, max_tokens_cap=8192
                ).extract(CONTEXT, run_id=None, chunk_id="c1")


async def test_identical_request_is_served_from_cache(store, fake_sleep):
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        async with httpx.AsyncClient() as http:
            await caller(store, http, fake_sleep).extract(CONTEXT, run_id=None, chunk_id="c1")
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(MISTRAL_URL)
        async with httpx.AsyncClient() as http:
            again = await caller(store, http, fake_sleep).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    assert route.call_count == 0
    assert again.cache_hit and again.cost_usd == 0 and again.attempts == 0
    assert [c.name for c in again.extraction.capabilities] == [
        "Point-in-time recovery",
        "Synchronous replication",
    ]
    rows = calls(store)
    assert [(r.outcome, r.cache_hit, r.cost_usd) for r in rows][1] == ("cache_hit", True, 0.0)
    assert rows[0].request_hash == rows[1].request_hash


@pytest.mark.parametrize(
    "change",
    [
        {"model": "mistral-large-latest"},
        {"mode": "tools"},
        {"temperature": 0.5},
        {"max_tokens": 1000},
        {"base_url": "http://127.0.0.1:9/v1"},
    ],
)
def test_cache_key_covers_every_setting(store, change):
    base = ProviderConfig("mistral", "mistral-small-latest", "json_schema")
    fields = {**base.__dict__, **change}
    prompt, prices = load_prompt(), load_prices()
    a = ExtractionCaller(
        cfg=base,
        key="k",
        prompt=prompt,
        store=store,
        http=None,  # type: ignore[arg-type]
        prices=prices,
    )
    b = ExtractionCaller(
        cfg=ProviderConfig(**fields), key="k", prompt=prompt, store=store, http=None, prices=prices
    )  # type: ignore[arg-type]
    assert a.request_hash(CONTEXT) != b.request_hash(CONTEXT)
    other = {**CONTEXT, "chunks": [{**CONTEXT["chunks"][0], "text": DOC + "x"}]}
    assert a.request_hash(CONTEXT) != a.request_hash(other)


async def test_429s_with_retry_after_do_not_use_up_the_attempts(store, fake_sleep, sleeps):
    throttled = httpx.Response(429, headers={"Retry-After": "1"}, json={"message": "slow down"})
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(side_effect=[throttled] * 5 + [ok(GOOD)])
        async with httpx.AsyncClient() as http:
            result = await caller(store, http, fake_sleep, attempts=2).extract(
                CONTEXT, run_id=None, chunk_id="c1"
            )
    assert route.call_count == 6 and result.validated
    assert sleeps == [1.0] * 5


async def test_429s_without_retry_after_count_as_attempts(store, fake_sleep):
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=httpx.Response(429, json={}))
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError, match="HTTP 429"):
                await caller(store, http, fake_sleep, attempts=3).extract(
                    CONTEXT, run_id=None, chunk_id="c1"
                )
    assert route.call_count == 3
