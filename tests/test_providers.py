"""The provider registry and the one call path: a provider is one module plus one registry
line; Batch bodies are Instructor's own request; embeddings are limited, retried, logged and
priced like chat calls. Providers are mocked at the HTTP layer with respx."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import httpx
import pytest
import respx
from pydantic import BaseModel, ValidationInfo, model_validator
from sqlalchemy import select

from conftest import DOC, GOOD, OPENAI_URL, SECRET, ok
from decomposer.calls.caller import ModelCaller
from decomposer.calls.prompts import Prompt, load_prompt
from decomposer.calls.task import Task
from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError, ProviderError
from decomposer.extraction.batch import request_body
from decomposer.extraction.task import ExtractionCaller
from decomposer.matching.embed import VectorCache, make_embedder
from decomposer.providers import openai as openai_provider
from decomposer.providers.base import ProviderConfig, api_key, resolve
from decomposer.providers.pricing import load_prices
from decomposer.providers.registry import REGISTRY, get_provider
from decomposer.store.models import LLMCall

CONTEXT = {
    "tool": "AcmeDB",
    "chunks": [{"id": "c1", "source": "acme.md", "heading": "AcmeDB", "text": DOC}],
}
MISTRAL_EMBED = "https://api.mistral.ai/v1/embeddings"
OPENAI_EMBED = "https://api.openai.com/v1/embeddings"


def embedding_reply(request: httpx.Request, tokens: int = 7) -> httpx.Response:
    body = json.loads(request.content)
    data = [
        {"object": "embedding", "index": i, "embedding": [1.0, float(i), 0.5]}
        for i, _ in enumerate(body["input"])
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return httpx.Response(
        200,
        json={"id": "e1", "object": "list", "model": body["model"], "data": data, "usage": usage},
    )


def rows(store, task: str | None = None) -> list[LLMCall]:
    with store.transaction() as session:
        query = select(LLMCall).order_by(LLMCall.id)
        if task is not None:
            query = query.where(LLMCall.task == task)
        return list(session.scalars(query))


@pytest.fixture
def keyed(monkeypatch) -> Settings:
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return Settings.from_env()


# --- registry -------------------------------------------------------------------------------


def test_loading_the_registry_imports_no_sdk():
    code = (
        "import sys, decomposer.providers.base, decomposer.providers.registry, "
        "decomposer.calls.task; "
        "print(sorted(m for m in ('openai', 'mistralai', 'instructor') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_provider_declares_its_key_variable_and_defaults(settings):
    assert list(REGISTRY) == ["mistral", "openai", "openai-compatible"]
    for name, provider in REGISTRY.items():
        assert provider.name == name and provider.key_variable
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        api_key(settings, "openai")
    with pytest.raises(ConfigError, match="unknown provider 'acme'"):
        get_provider("acme")


def test_a_new_provider_is_one_module_and_one_registry_line(monkeypatch, store, fake_sleep):
    """A fake vendor speaking OpenAI's wire format at its own URL, registered with one line,
    extracts, is priced and logged, and embeds — nothing else in the code names it."""
    acme = dataclasses.replace(
        openai_provider.PROVIDER,
        name="acme",
        key_variable="ACME_API_KEY",
        secret=lambda _settings: None,
        key_required=False,
        needs_base_url=True,
        default_model="acme-1",
        default_embed_model="acme-embed",
        batch=None,
    )
    monkeypatch.setitem(REGISTRY, "acme", acme)
    settings = Settings.from_env()
    cfg = resolve(settings, "acme", base_url="http://acme.test/v1")
    assert (cfg.model, api_key(settings, "acme")) == ("acme-1", "not-needed")
    prices = dataclasses.replace(load_prices(), prices={"acme": {"*": (1.0, 2.0)}})
    with respx.mock() as mock:
        chat = mock.post("http://acme.test/v1/chat/completions").mock(return_value=ok(GOOD))
        mock.post("http://acme.test/v1/embeddings").mock(side_effect=embedding_reply)

        async def extract() -> None:
            async with httpx.AsyncClient() as http:
                caller = ExtractionCaller(
                    cfg=cfg,
                    key="not-needed",
                    prompt=load_prompt(),
                    store=store,
                    http=http,
                    prices=prices,
                    sleep=fake_sleep,
                )
                result = await caller.extract(CONTEXT, run_id=None, chunk_id="c1")
                assert result.validated and result.cost_usd == pytest.approx(500 / 1e6)

        import asyncio

        asyncio.run(extract())
        assert json.loads(chat.calls.last.request.content)["model"] == "acme-1"
        with httpx.Client() as http:
            embedder = make_embedder(
                settings,
                "acme",
                base_url="http://acme.test/v1",
                http=http,
                cache=VectorCache(store),
            )
            embedder.encode(["one", "two"])
    [extracted] = rows(store, "extract")
    [embedded] = rows(store, "embed")
    assert (extracted.provider, extracted.outcome) == ("acme", "ok")
    assert (embedded.provider, embedded.model, embedded.input_tokens) == ("acme", "acme-embed", 7)


@pytest.mark.parametrize("provider", ["mistral", "openai"])
@pytest.mark.parametrize("mode", ["json_schema", "tools"])
async def test_batch_body_is_instructors_first_request(provider, mode, store, keyed, fake_sleep):
    """The Batch line body equals what the inline call sends, in both modes."""
    cfg = resolve(keyed, provider, mode=mode)
    prompt = load_prompt()
    url = "https://api.mistral.ai/v1/chat/completions" if provider == "mistral" else OPENAI_URL
    with respx.mock() as mock:
        route = mock.post(url).mock(return_value=ok(GOOD, tools=mode == "tools"))
        async with httpx.AsyncClient() as http:
            caller = ExtractionCaller(
                cfg=cfg,
                key=SECRET,
                prompt=prompt,
                store=store,
                http=http,
                prices=load_prices(),
                sleep=fake_sleep,
            )
            await caller.extract(CONTEXT, run_id=None, chunk_id="c1")
    inline = json.loads(route.calls.last.request.content)
    body = request_body(cfg, prompt, CONTEXT)
    if provider == "mistral":
        assert "model" not in body  # the model is named on the Mistral batch job
        inline.pop("model")
        assert inline.pop("stream") is False  # added by the Mistral SDK, not Instructor
    assert body == inline


# --- embeddings on the call path ------------------------------------------------------------


@respx.mock
@pytest.mark.parametrize(
    ("name", "url", "model", "price"),
    [
        ("mistral", MISTRAL_EMBED, "mistral-embed", 0.10),
        ("openai", OPENAI_EMBED, "text-embedding-3-small", 0.02),
    ],
)
def test_embedding_requests_are_logged_with_their_cost(keyed, store, name, url, model, price):
    respx.post(url).mock(side_effect=lambda r: embedding_reply(r, tokens=1000))
    with httpx.Client() as http:
        embedder = make_embedder(keyed, name, http=http, cache=VectorCache(store))
        embedder.encode(["a", "b", "c"])
        embedder.encode(["a", "b", "c"])  # cached: no request, no row
    [row] = rows(store)
    assert (row.task, row.provider, row.model, row.outcome) == ("embed", name, model, "ok")
    assert (row.run_id, row.chunk_id, row.input_tokens, row.attempts) == (None, None, 1000, 1)
    assert row.cost_usd == pytest.approx(1000 * price / 1e6)


@respx.mock
def test_embedding_requests_are_retried_and_failures_logged(keyed, store, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda _s: None)
    route = respx.post(OPENAI_EMBED).mock(
        side_effect=[
            httpx.Response(503, json={"message": "busy"}),
            httpx.Response(429, headers={"Retry-After": "0"}, json={}),
            embedding_reply,
        ]
    )
    with httpx.Client() as http:
        embedder = make_embedder(keyed, "openai", http=http, cache=VectorCache(store))
        embedder.encode(["x"])
    assert route.call_count == 3
    [row] = rows(store, "embed")
    assert (row.outcome, row.attempts) == ("ok", 3)
    respx.post(OPENAI_EMBED).mock(return_value=httpx.Response(401, json={}))
    with httpx.Client() as http:
        embedder = make_embedder(keyed, "openai", http=http, cache=VectorCache(store))
        with pytest.raises(ProviderError, match="HTTP 401"):
            embedder.encode(["y"])
    failed = rows(store, "embed")[-1]
    assert (failed.outcome, failed.attempts, failed.cost_usd) == ("error", 1, 0.0)
    assert SECRET not in (failed.error or "")


# --- a second task ----------------------------------------------------------------------------


class Headline(BaseModel):
    """A one-line headline that must name the given word."""

    text: str

    @model_validator(mode="after")
    def _names_the_word(self, info: ValidationInfo) -> Headline:
        word = (info.context or {}).get("word")
        if word and word not in self.text:
            raise ValueError(f"the headline must contain {word!r}")
        return self


async def test_a_second_task_needs_no_change_to_the_caller(store, fake_sleep):
    """Another prompt and answer model, validated against its own context, re-asked, cached
    and logged under its own task name by the same generic caller."""
    prompt = Prompt(
        name="headline", version="v1", system="Write a headline.", user="About {{ word }}."
    )
    task = Task(name="headline", prompt=prompt, response_model=Headline)
    cfg = ProviderConfig("openai", "gpt-4o-mini", "json_schema")
    context = {"word": "Acme"}
    with respx.mock() as mock:
        route = mock.post(OPENAI_URL).mock(
            side_effect=[ok({"text": "Databases are fast"}), ok({"text": "Acme is fast"})]
        )
        async with httpx.AsyncClient() as http:
            caller = ModelCaller(
                cfg=cfg,
                key=SECRET,
                task=task,
                store=store,
                http=http,
                prices=load_prices(),
                sleep=fake_sleep,
            )
            first = await caller.call(context, run_id=None, chunk_id=None)
            again = await caller.call(context, run_id=None, chunk_id=None)
    assert route.call_count == 2  # one re-ask, then the cache
    sent = json.loads(route.calls[0].request.content)
    assert sent["messages"][1]["content"] == "About Acme."
    assert sent["response_format"]["json_schema"]["name"] == "Headline"
    assert (first.value.text, first.validated, again.cache_hit) == ("Acme is fast", True, True)
    assert [(r.task, r.outcome, r.prompt_version) for r in rows(store)] == [
        ("headline", "ok", "headline/v1"),
        ("headline", "cache_hit", "headline/v1"),
    ]
