"""The alignment's fast lexical path gives the sparse TF-IDF path's matrix, bit for bit."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pytest

from decomposer.matching.align import Alignment, _split, align, similarity
from decomposer.matching.embed import LexicalEmbedder, Thresholds, Vectors, capability_text
from decomposer.matching.lexpair import PairEncoder

_WORD_LIST = (
    "stream streaming streamed tokens token function functions calling call json schema "
    "schemas structured output outputs vision image images fine tuning tuned batch batches "
    "embedding embeddings model models deploy deployment hosted private open weights the a of "
    "and to with for x 42 api apis rate limit limits cache cached caching"
)
WORDS = _WORD_LIST.split()


def _texts(rng: random.Random, n: int, vocab: Sequence[str]) -> list[str]:
    out = []
    for _ in range(n):
        name = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 4)))
        description = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 60)))
        unique = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 15)))
        out.append(capability_text(name, description, unique))
    return out


def _sparse_path(embedder: LexicalEmbedder, a: list[str], b: list[str]) -> np.ndarray:
    vectors, _ = embedder.encode([*a, *b])
    a_vecs, b_vecs = _split(vectors, len(a))
    return similarity(a_vecs, b_vecs)


def _same_bits(x: np.ndarray, y: np.ndarray) -> bool:
    return (
        x.shape == y.shape
        and x.dtype == y.dtype
        and np.array_equal(x.view(np.uint32), y.view(np.uint32))
    )


@pytest.mark.parametrize("cumsum_cells", [1_000_000, 10])  # both ways of summing the products
def test_fast_path_equals_sparse_tfidf_bit_for_bit(cumsum_cells: int) -> None:
    rng = random.Random(7)
    embedder = LexicalEmbedder()
    pairs = PairEncoder(embedder.tokens, cumsum_cells=cumsum_cells)
    synthetic = [f"w{i}x" for i in range(400)]
    for trial in range(150):
        vocab = WORDS if trial % 2 else WORDS + synthetic
        a = _texts(rng, rng.randint(0, 20), vocab)
        b = _texts(rng, rng.randint(0, 20), vocab)
        if trial % 5 == 0:
            b += a[: rng.randint(0, len(a))]  # identical capabilities on both sides
        if trial % 7 == 0:
            a.append("the of and a")  # only stop words: an empty row
        expected = _sparse_path(embedder, a, b)
        assert _same_bits(pairs.similarity(a, b), expected), (trial, a, b)


def test_each_list_of_texts_is_tokenised_once() -> None:
    embedder = LexicalEmbedder()
    seen: list[str] = []

    def tokenize(text: str) -> list[str]:
        seen.append(text)
        return embedder.tokens(text)

    pairs = PairEncoder(tokenize)
    a, b, c = ["fast streaming api"], ["streaming tokens", "batch jobs"], ["json schema output"]
    first = pairs.similarity(a, b)
    pairs.similarity(a, c)
    pairs.similarity(b, c)
    assert sorted(seen) == sorted([*a, *b, *c])
    assert _same_bits(pairs.similarity(a, b), first)


def test_empty_sides() -> None:
    pairs = PairEncoder(LexicalEmbedder().tokens)
    assert pairs.similarity([], ["x y"]).shape == (0, 1)
    assert pairs.similarity(["stream tokens"], []).shape == (1, 0)
    assert not pairs.similarity(["the of"], ["and a"]).any()


class _SparseOnly:
    """The lexical embedder seen through the generic ``Embedder`` protocol (no fast path)."""

    def __init__(self) -> None:
        self.inner = LexicalEmbedder()
        self.model = self.inner.model
        self.thresholds: Thresholds = self.inner.thresholds

    def encode(self, corpus: Sequence[str], queries: Sequence[str] = ()) -> tuple[Vectors, Vectors]:
        return self.inner.encode(corpus, queries)


def test_align_gives_the_same_pairs_either_way() -> None:
    rng = random.Random(11)
    fast, slow = LexicalEmbedder(), _SparseOnly()
    for _ in range(40):
        a, b = _texts(rng, rng.randint(1, 15), WORDS), _texts(rng, rng.randint(1, 15), WORDS)
        got: Alignment = align(fast, a, b)
        assert got == align(slow, a, b)
