"""Embeddings: texts -> L2-normalised vectors, so that cosine similarity is a dot product.

Every embedder implements one method, ``encode(corpus, queries)``, returning the corpus vectors
and the query vectors as rows of a matrix (a dense ``numpy`` array or a ``scipy.sparse`` CSR
matrix). Providers:

- ``lexical`` (default, offline): TF-IDF over word stems (Snowball English stemmer), fitted on
  the corpus it is given; no network, no model download, deterministic. Name words count twice
  (``capability_text``). Its vectors depend on the corpus statistics (IDF), so they are
  recomputed rather than cached; that takes seconds even for 100,000 capabilities.
- every registered provider with an embedding function (``mistral``: ``mistral-embed``;
  ``openai``: ``text-embedding-3-small``; ``openai-compatible``: any model at a base URL); the
  vendor code lives in the provider modules.

Provider vectors are cached in the store (table ``embeddings``) by ``(model, sha256(text))`` so
each text is embedded, and billed, once per model; the rest is sent in batches, each request
logged and priced in the call log (task ``embed``) through ``calls.embedding``. The HTTP client
is injected (tests use respx; SDK retries are off).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeAlias

import httpx
import numpy as np
import numpy.typing as npt
import snowballstemmer
from scipy import sparse
from sqlalchemy import select

from decomposer.calls.calllog import CallLog
from decomposer.calls.embedding import EmbeddingCaller
from decomposer.calls.runtime import limits_for
from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError, ProviderError
from decomposer.matching.lexpair import PairEncoder
from decomposer.providers.base import api_key, endpoint, get_provider
from decomposer.providers.pricing import PriceTable, load_prices
from decomposer.providers.ratelimit import Limits, SyncRateLimiter, limiter_key
from decomposer.providers.registry import REGISTRY
from decomposer.store import Store
from decomposer.store.match_models import EmbeddingRecord

Dense: TypeAlias = npt.NDArray[np.float32]
Vectors: TypeAlias = Dense | sparse.csr_matrix
EMBEDDERS = ("lexical", *(name for name, p in REGISTRY.items() if p.embedder is not None))
LEXICAL_MODEL = "lexical-tfidf-1"


@dataclass(frozen=True)
class Thresholds:
    """Cosine similarities an embedder's scores must reach.

    ``align``: two capabilities (of two tools) are the same capability. ``match``: a search query
    is answered by a capability. Lexical scores are lower than neural ones for the same pair, so
    each embedder has its own; both are overridable on the command line.
    """

    align: float
    match: float


# Lexical: calibrated on the demo tools and hand-built cases (tests/test_align.py): pairs of
# the same capability described by two vendors score 0.30–0.75, unrelated ones 0.00–0.15; a
# 2–5 word query that names a capability scores 0.15–0.50 against it.
LEXICAL_THRESHOLDS = Thresholds(align=0.22, match=0.20)


class Embedder(Protocol):
    @property
    def model(self) -> str:
        """Identity of the vectors (provider and model): part of cache keys and run records."""
        ...

    @property
    def thresholds(self) -> Thresholds: ...

    def encode(self, corpus: Sequence[str], queries: Sequence[str] = ()) -> tuple[Vectors, Vectors]:
        """Vectors for the corpus and for the queries, rows L2-normalised, in input order."""
        ...


def capability_text(name: str, description: str, unique: str) -> str:
    """What a capability is embedded as: its name (twice: it is the most specific part), its
    description and its Unique line. ``vs alternatives`` is left out on purpose: it names the
    competitors, which would pull unrelated capabilities of two tools together."""
    return f"{name}. {name}. {description} {unique}"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- lexical -----------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    """a about above after again all also an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our ours out over own same she should so
    some such than that the their theirs them then there these they this those through to too
    under until up very via was we were what when where which while who whom why will with would
    you your yours""".split()  # noqa: SIM905 (a word list reads better as text)
)


class Tokenizer:
    """Lower-case words, English stop words dropped, Snowball stems (memoised per word)."""

    def __init__(self) -> None:
        self._stemmer = snowballstemmer.stemmer("english")
        self._stems: dict[str, str] = {}

    def stem(self, word: str) -> str | None:
        """The stem of one lower-case word, or None for a stop word."""
        if word in STOPWORDS or len(word) < 2:
            return None
        stemmed = self._stems.get(word)
        if stemmed is None:
            stemmed = self._stems[word] = self._stemmer.stemWord(word)
        return stemmed

    def __call__(self, text: str) -> list[str]:
        stems = self._stems
        out: list[str] = []
        for word in _WORD.findall(text.lower()):
            if word in STOPWORDS or len(word) < 2:
                continue
            stem = stems.get(word)
            if stem is None:
                stem = self._stemmer.stemWord(word)
                stems[word] = stem
            out.append(stem)
        return out


class LexicalEmbedder:
    """TF-IDF (sublinear term frequency, smoothed IDF) over stems, fitted on the corpus.

    ``weight(t, d) = (1 + ln tf(t, d)) × (1 + ln((1 + N) / (1 + df(t))))``; each row is then
    L2-normalised. Query words the corpus never uses are dropped (they cannot match anything).
    """

    def __init__(self, thresholds: Thresholds = LEXICAL_THRESHOLDS) -> None:
        self._thresholds = thresholds
        self._tokenize = Tokenizer()
        self._pairs = PairEncoder(self._tokenize)

    @property
    def model(self) -> str:
        return LEXICAL_MODEL

    @property
    def thresholds(self) -> Thresholds:
        return self._thresholds

    def tokens(self, text: str) -> list[str]:
        return self._tokenize(text)

    def pair_similarity(self, a_texts: Sequence[str], b_texts: Sequence[str]) -> Dense:
        """``similarity`` of ``encode([*a_texts, *b_texts])`` split at A|B, bit for bit, fast:
        each list of texts is tokenised once per embedder (``lexpair``)."""
        return self._pairs.similarity(a_texts, b_texts)

    def encode(
        self, corpus: Sequence[str], queries: Sequence[str] = ()
    ) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        vocab: dict[str, int] = {}  # stem -> column
        columns: dict[str, int] = {}  # word -> column, or -1 for stop words and unknown words
        corpus_tf = self._term_counts(corpus, vocab, columns, grow=True)
        n_terms = max(len(vocab), 1)
        corpus_tf.resize((len(corpus), n_terms))
        df = np.bincount(corpus_tf.indices, minlength=n_terms)
        idf = (1.0 + np.log((1.0 + len(corpus)) / (1.0 + df))).astype(np.float32)
        query_tf = self._term_counts(queries, vocab, columns, grow=False)
        query_tf.resize((len(queries), n_terms))
        return _weigh(corpus_tf, idf), _weigh(query_tf, idf)

    def _term_counts(
        self, texts: Sequence[str], vocab: dict[str, int], columns: dict[str, int], *, grow: bool
    ) -> sparse.csr_matrix:
        """Raw term counts, one row per text. Words are stemmed once per distinct word."""
        words: list[str] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for row, text in enumerate(texts):
            found = _WORD.findall(text.lower())
            words.extend(found)
            lengths[row] = len(found)
        stem = self._tokenize.stem
        for word in dict.fromkeys(words):
            if word in columns:
                continue
            stemmed = stem(word)
            if stemmed is None:
                columns[word] = -1
            elif stemmed in vocab:
                columns[word] = vocab[stemmed]
            elif grow:
                columns[word] = vocab[stemmed] = len(vocab)
            else:
                columns[word] = -1
        ids = np.fromiter((columns[w] for w in words), dtype=np.int64, count=len(words))
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        keep = ids >= 0
        counts = sparse.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], ids[keep])),
            shape=(len(texts), max(len(vocab), 1)),
        )
        counts.sum_duplicates()
        return counts


def _weigh(counts: sparse.csr_matrix, idf: npt.NDArray[np.float32]) -> sparse.csr_matrix:
    """``(1 + ln tf) × idf``, then each row L2-normalised (empty rows stay empty)."""
    matrix = sparse.csr_matrix(counts, dtype=np.float32, copy=True)
    matrix.data = (1.0 + np.log(matrix.data)) * idf[matrix.indices]
    matrix.sort_indices()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms).astype(np.float32) @ matrix)


# --- providers -----------------------------------------------------------------------------------


def normalise(vectors: Dense) -> Dense:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Dense = (vectors / norms).astype(np.float32)
    return out


class VectorCache:
    """Provider vectors in the store, keyed by ``(model, sha256(text))``."""

    def __init__(self, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))

    def get(self, model: str, hashes: Sequence[str]) -> dict[str, Dense]:
        found: dict[str, Dense] = {}
        wanted = list(dict.fromkeys(hashes))
        with self.store.transaction() as session:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                rows = session.execute(
                    select(EmbeddingRecord.content_hash, EmbeddingRecord.vector).where(
                        EmbeddingRecord.model == model, EmbeddingRecord.content_hash.in_(part)
                    )
                )
                for digest, blob in rows:
                    found[digest] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        return found

    def put(self, model: str, vectors: dict[str, Dense]) -> None:
        now = self.clock()
        with self.store.transaction() as session:
            for digest, vector in vectors.items():
                session.merge(
                    EmbeddingRecord(
                        model=model,
                        content_hash=digest,
                        dims=int(vector.shape[0]),
                        vector=np.asarray(vector, dtype="<f4").tobytes(),
                        created_at=now,
                    )
                )


@dataclass
class EmbedStats:
    texts: int = 0
    cached: int = 0
    requests: int = 0


class ProviderEmbedder:
    """A provider's embeddings: cache look-up, batching, normalisation; the requests themselves
    go through ``calls.embedding`` (limits, retries, call log, cost)."""

    def __init__(
        self,
        provider: str,
        key: str,
        http: httpx.Client,
        model: str | None = None,
        *,
        base_url: str | None = None,
        batch_size: int | None = None,
        cache: VectorCache | None = None,
        thresholds: Thresholds | None = None,
        timeout_s: float = 60.0,
        prices: PriceTable | None = None,
        limits: Limits | None = None,
        storage_uri: str = "memory://",
    ) -> None:
        spec = get_provider(provider)
        if spec.embedder is None:
            raise ConfigError(f"the {provider} provider has no embeddings")
        chosen = model or spec.default_embed_model
        if not chosen:
            raise ConfigError(f"--model is required for the {provider} embedder")
        self.batch_size = batch_size if batch_size is not None else spec.embed_batch_size
        if self.batch_size < 1:
            raise ConfigError("the embedding batch size must be at least 1")
        self.provider = provider
        self._model_name = chosen
        self.base_url = base_url
        self.cache = cache
        self._thresholds = thresholds or Thresholds(*spec.embed_thresholds)
        self.stats = EmbedStats()
        active = limits if limits is not None and limits.active else None
        self._send = EmbeddingCaller(
            provider=provider,
            model=chosen,
            embed=spec.embedder(key, http, base_url, timeout_s),
            prices=prices or load_prices(),
            log=CallLog(cache.store, cache.clock) if cache is not None else None,
            limiter=SyncRateLimiter(active, limiter_key(provider, key, base_url), storage_uri)
            if active is not None
            else None,
            base_url=base_url,
        )

    @property
    def model(self) -> str:
        where = f"@{self.base_url}" if self.base_url else ""
        return f"{self.provider}:{self._model_name}{where}"

    @property
    def thresholds(self) -> Thresholds:
        return self._thresholds

    def encode(self, corpus: Sequence[str], queries: Sequence[str] = ()) -> tuple[Dense, Dense]:
        vectors = self.embed([*corpus, *queries])
        return vectors[: len(corpus)], vectors[len(corpus) :]

    def embed(self, texts: Sequence[str]) -> Dense:
        hashes = [content_hash(t) for t in texts]
        known = self.cache.get(self.model, hashes) if self.cache is not None else {}
        missing = list(dict.fromkeys(h for h in hashes if h not in known))
        by_hash = dict(zip(hashes, texts, strict=True))
        self.stats.texts += len(texts)
        self.stats.cached += sum(h in known for h in hashes)
        fresh: dict[str, Dense] = {}
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            rows = self._send([by_hash[h] for h in batch])
            self.stats.requests += 1
            if len(rows) != len(batch):
                raise ProviderError(
                    f"{self.provider} returned {len(rows)} embeddings for {len(batch)} texts"
                )
            for digest, row in zip(batch, rows, strict=True):
                fresh[digest] = normalise(np.asarray([row], dtype=np.float32))[0]
        if fresh and self.cache is not None:
            self.cache.put(self.model, fresh)
        known.update(fresh)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        dims = {known[h].shape[0] for h in hashes}
        if len(dims) != 1:
            raise ProviderError(f"{self.model} returned vectors of different sizes: {dims}")
        return np.stack([known[h] for h in hashes]).astype(np.float32)


def make_embedder(
    settings: Settings,
    name: str = "lexical",
    *,
    model: str | None = None,
    base_url: str | None = None,
    http: httpx.Client | None = None,
    cache: VectorCache | None = None,
    align_threshold: float | None = None,
    match_threshold: float | None = None,
) -> Embedder:
    """Build an embedder from a user's choice; provider embedders need ``http``."""
    if name != "lexical" and (name not in REGISTRY or REGISTRY[name].embedder is None):
        raise ConfigError(f"unknown embedder {name!r}", hint=f"use one of {', '.join(EMBEDDERS)}")
    base = LEXICAL_THRESHOLDS if name == "lexical" else Thresholds(*REGISTRY[name].embed_thresholds)
    thresholds = Thresholds(
        align=base.align if align_threshold is None else align_threshold,
        match=base.match if match_threshold is None else match_threshold,
    )
    for value in (thresholds.align, thresholds.match):
        if not (0.0 <= value <= 1.0):
            raise ConfigError(f"a threshold must be between 0 and 1, got {value}")
    if name == "lexical":
        return LexicalEmbedder(thresholds)
    if http is None:
        raise ConfigError(f"the {name} embedder needs an HTTP client")
    url = endpoint(settings, name, base_url, what="embedder")
    chosen = model or get_provider(name).default_embed_model
    if not chosen:
        raise ConfigError(f"--model is required for the {name} embedder")
    return ProviderEmbedder(
        name,
        api_key(settings, name),
        http,
        chosen,
        base_url=url,
        cache=cache,
        thresholds=thresholds,
        prices=load_prices(settings.prices_file),
        limits=limits_for(settings, name),
        storage_uri=settings.redis_url or "memory://",
    )


def shared_terms(tokenize: Callable[[str], list[str]], a: str, b: str) -> list[str]:
    """Stems two texts have in common, in the first text's order (for explanations)."""
    theirs = set(tokenize(b))
    return list(dict.fromkeys(t for t in tokenize(a) if t in theirs))
