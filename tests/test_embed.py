"""Embedding providers through the real SDKs with respx at the HTTP layer; the vector cache."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import respx

from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError, ProviderError
from decomposer.matching.embed import (
    LexicalEmbedder,
    ProviderEmbedder,
    VectorCache,
    content_hash,
    make_embedder,
)
from decomposer.store.match_models import EmbeddingRecord

MISTRAL_EMBED = "https://api.mistral.ai/v1/embeddings"
OPENAI_EMBED = "https://api.openai.com/v1/embeddings"
LOCAL_EMBED = "http://127.0.0.1:8080/v1/embeddings"


def vector(text: str, dims: int) -> list[float]:
    """A deterministic, text-dependent fake vector (not normalised, to test that we do)."""
    rng = np.random.default_rng(int(content_hash(text)[:8], 16))
    return [float(x) for x in (rng.random(dims) * 3 + 0.1)]


def embedding_reply(request: httpx.Request, dims: int) -> httpx.Response:
    body = json.loads(request.content)
    data = [
        {"object": "embedding", "index": i, "embedding": vector(t, dims)}
        for i, t in enumerate(body["input"])
    ]
    data.reverse()  # providers may answer out of order: the index decides
    usage = {"prompt_tokens": 5, "total_tokens": 5, "completion_tokens": 0}
    return httpx.Response(
        200,
        json={"id": "e1", "object": "list", "model": body["model"], "data": data, "usage": usage},
    )


@pytest.fixture
def keyed(monkeypatch) -> Settings:
    monkeypatch.setenv("MISTRAL_API_KEY", "mk-test")
    monkeypatch.setenv("OPENAI_API_KEY", "ok-test")
    return Settings.from_env()


@respx.mock
def test_mistral_embed_wire_format_batches_and_cache(keyed, store):
    route = respx.post(MISTRAL_EMBED).mock(side_effect=lambda r: embedding_reply(r, 1024))
    texts = ["chunk one", "chunk two", "chunk three"]
    with httpx.Client() as http:
        emb = make_embedder(keyed, "mistral", http=http, cache=VectorCache(store))
        assert isinstance(emb, ProviderEmbedder) and emb.provider == "mistral"
        emb.batch_size = 2
        corpus, queries = emb.encode(texts[:2], texts[2:])
    assert route.call_count == 2  # 3 texts in batches of 2
    first = json.loads(route.calls[0].request.content)
    assert first == {"model": "mistral-embed", "input": ["chunk one", "chunk two"]}
    assert route.calls[0].request.headers["authorization"] == "Bearer mk-test"
    assert corpus.shape == (2, 1024) and queries.shape == (1, 1024)
    assert np.linalg.norm(corpus, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    want = np.asarray(vector("chunk two", 1024), dtype=np.float32)
    assert corpus[1] == pytest.approx(want / np.linalg.norm(want), abs=1e-6)
    with store.transaction() as s:
        rows = s.query(EmbeddingRecord).all()
    assert {r.model for r in rows} == {"mistral:mistral-embed"}
    assert {r.content_hash for r in rows} == {content_hash(t) for t in texts}
    assert {r.dims for r in rows} == {1024}

    # Everything is cached now: no request, same vectors.
    with httpx.Client() as http:
        again = make_embedder(keyed, "mistral", http=http, cache=VectorCache(store))
        corpus2, _ = again.encode(texts[:2], texts[2:])
    assert route.call_count == 2
    assert np.array_equal(corpus, corpus2)


@respx.mock
def test_openai_asks_for_floats_and_only_sends_what_is_missing(keyed, store):
    route = respx.post(OPENAI_EMBED).mock(side_effect=lambda r: embedding_reply(r, 16))
    cache = VectorCache(store)
    with httpx.Client() as http:
        emb = make_embedder(keyed, "openai", http=http, cache=cache)
        assert isinstance(emb, ProviderEmbedder) and emb.provider == "openai"
        emb.embed(["hello"])
        vectors = emb.embed(["hello", "world", "world"])
    assert route.call_count == 2
    bodies = [json.loads(c.request.content) for c in route.calls]
    assert bodies[0] == {
        "input": ["hello"],
        "model": "text-embedding-3-small",
        "encoding_format": "float",
    }
    assert bodies[1]["input"] == ["world"]
    assert vectors.shape == (3, 16)
    assert np.array_equal(vectors[1], vectors[2])


@respx.mock
def test_openai_compatible_uses_the_base_url_and_its_own_cache_key(keyed, store):
    route = respx.post(LOCAL_EMBED).mock(side_effect=lambda r: embedding_reply(r, 8))
    with httpx.Client() as http:
        emb = make_embedder(
            keyed,
            "openai-compatible",
            model="bge-small",
            base_url="http://127.0.0.1:8080/v1",
            http=http,
            cache=VectorCache(store),
        )
        emb.encode(["a text"])
    assert route.call_count == 1
    assert emb.model == "openai-compatible:bge-small@http://127.0.0.1:8080/v1"


@respx.mock
@pytest.mark.parametrize(("name", "url"), [("mistral", MISTRAL_EMBED), ("openai", OPENAI_EMBED)])
def test_provider_errors_are_one_line_without_the_key(keyed, name, url):
    respx.post(url).mock(return_value=httpx.Response(401, json={"message": "bad key"}))
    with httpx.Client() as http:
        emb = make_embedder(keyed, name, http=http)
        with pytest.raises(ProviderError) as info:
            emb.encode(["x"])
    assert "HTTP 401" in str(info.value)
    assert "mk-test" not in str(info.value) and "ok-test" not in str(info.value)


@respx.mock
def test_a_reply_with_the_wrong_number_of_vectors_is_refused(keyed):
    respx.post(OPENAI_EMBED).mock(
        return_value=httpx.Response(
            200,
            json={
                "object": "list",
                "model": "m",
                "data": [{"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )
    )
    with httpx.Client() as http:
        emb = make_embedder(keyed, "openai", http=http)
        with pytest.raises(ProviderError, match="1 embeddings for 2 texts"):
            emb.encode(["a", "b"])


def test_configuration_errors(settings):
    with pytest.raises(ConfigError, match="unknown embedder"):
        make_embedder(settings, "word2vec")
    with pytest.raises(ConfigError, match="MISTRAL_API_KEY"), httpx.Client() as http:
        make_embedder(settings, "mistral", http=http)
    with pytest.raises(ConfigError, match="server address"), httpx.Client() as http:
        make_embedder(settings, "openai-compatible", model="m", http=http)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        make_embedder(settings, "lexical", match_threshold=1.5)


def test_lexical_is_deterministic_and_offline():
    texts = ["Text embeddings for search", "Fine-tuning with LoRA", "Vision and OCR"]
    a_c, a_q = LexicalEmbedder().encode(texts, ["lora fine tuning"])
    b_c, b_q = LexicalEmbedder().encode(texts, ["lora fine tuning"])
    assert (a_c != b_c).nnz == 0 and (a_q != b_q).nnz == 0
    assert LexicalEmbedder().tokens("Fine-tuning the Embeddings") == ["fine", "tune", "embed"]
