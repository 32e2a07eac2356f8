"""Alignment on hand-built cases (identical, paraphrased, unrelated, one-to-many temptations),
top-k against brute force, and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from decomposer.matching.align import align, assign, similarity, top_k
from decomposer.matching.embed import LexicalEmbedder, Thresholds, capability_text


def cap(name: str, description: str, unique: str = "") -> str:
    return capability_text(name, description, unique)


EMBEDDINGS = cap(
    "Text embeddings",
    "Generates dense vector embeddings from text for semantic search and retrieval.",
    "1024-dimensional vectors.",
)
FINE_TUNING = cap(
    "Fine-tuning", "Fine-tune the model on your own datasets with LoRA adapters.", "Async jobs."
)
VISION = cap("Image understanding", "Answers questions about images and reads text (OCR).")
LONG_CONTEXT = cap("Long context", "A context window of 10 million tokens for long documents.")
BILLING = cap("Invoices", "Monthly invoices are sent by email to the account owner.")
WEATHER = cap("Weather radar", "Shows rain clouds moving over a map in real time.")


def names(result, a, b):
    return [(a[p.a], b[p.b]) for p in result.shared]


def test_identical_capabilities_pair_with_similarity_one():
    tools = [EMBEDDINGS, FINE_TUNING, VISION]
    result = align(LexicalEmbedder(), tools, list(reversed(tools)))
    assert sorted(names(result, tools, list(reversed(tools)))) == sorted((t, t) for t in tools)
    assert all(p.similarity == pytest.approx(1.0, abs=1e-4) for p in result.shared)
    assert result.only_a == result.only_b == []


def test_paraphrases_pair_and_the_rest_is_only_in_one_tool():
    a = [EMBEDDINGS, FINE_TUNING, BILLING]
    b = [
        cap("Embedding API", "Turns text into embedding vectors for semantic search."),
        cap("Custom fine-tuning", "Fine-tunes models on a customer's datasets."),
        WEATHER,
    ]
    result = align(LexicalEmbedder(), a, b)
    assert sorted(names(result, a, b)) == sorted([(EMBEDDINGS, b[0]), (FINE_TUNING, b[1])])
    assert result.only_a == [2]
    assert result.only_b == [2]
    assert all(p.similarity >= result.threshold for p in result.shared)


def test_unrelated_tools_share_nothing():
    a = [BILLING, LONG_CONTEXT]
    b = [WEATHER, cap("Recipes", "Suggests dinner recipes from what is in the fridge.")]
    result = align(LexicalEmbedder(), a, b)
    assert result.shared == []
    assert result.only_a == [0, 1]
    assert result.only_b == [0, 1]


def test_assignment_is_optimal_not_greedy():
    # Greedy takes (0,0)=0.90 first and is left with (1,1)=0.10, below the threshold: one pair.
    # The optimal assignment pairs (0,1)=0.80 and (1,0)=0.85: two pairs, total 1.65.
    sim = np.array([[0.90, 0.80], [0.85, 0.10]], dtype=np.float32)
    result = assign(sim, threshold=0.3)
    assert {(p.a, p.b) for p in result.shared} == {(0, 1), (1, 0)}
    assert result.only_a == result.only_b == []


def test_one_capability_is_never_paired_twice():
    # Two of A's capabilities both look most like B's single embeddings capability.
    a = [
        EMBEDDINGS,
        cap("Batch embeddings", "Embeds many texts in one request as vectors for search."),
    ]
    b = [cap("Embeddings", "Text embeddings: vectors for semantic search and retrieval.")]
    result = align(LexicalEmbedder(), a, b)
    assert len(result.shared) == 1
    assert [p.b for p in result.shared] == [0]
    assert len(result.only_a) == 1


def test_pairs_below_the_threshold_are_dropped_even_when_assigned():
    sim = np.array([[0.21, 0.0], [0.0, 0.9]], dtype=np.float32)
    result = assign(sim, threshold=0.22)
    assert [(p.a, p.b) for p in result.shared] == [(1, 1)]
    assert result.only_a == [0] and result.only_b == [0]


def test_threshold_comes_from_the_embedder():
    a, b = [EMBEDDINGS], [cap("Embedding API", "Turns text into embedding vectors.")]
    assert align(LexicalEmbedder(Thresholds(align=0.99, match=0.2)), a, b).shared == []
    assert len(align(LexicalEmbedder(Thresholds(align=0.05, match=0.2)), a, b).shared) == 1


def test_alignment_is_deterministic():
    a = [EMBEDDINGS, FINE_TUNING, VISION, LONG_CONTEXT, BILLING]
    b = [VISION, WEATHER, EMBEDDINGS, cap("Fine-tuning jobs", "Fine-tune models on your data.")]
    first = align(LexicalEmbedder(), a, b)
    for _ in range(3):
        assert align(LexicalEmbedder(), a, b) == first


def test_empty_sides():
    result = align(LexicalEmbedder(), [], [EMBEDDINGS])
    assert result.shared == [] and result.only_b == [0]


def brute_force(corpus: np.ndarray, queries: np.ndarray, k: int):
    out = []
    for row in queries @ corpus.T:
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        out.append([(j, row[j]) for j in order[:k] if row[j] > 0])
    return out


@pytest.mark.parametrize("block_cells", [7, 64, 10_000])
def test_top_k_matches_brute_force_dense_and_sparse(block_cells):
    rng = np.random.default_rng(7)
    corpus = rng.random((40, 6)).astype(np.float32) - 0.3
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = rng.random((9, 6)).astype(np.float32) - 0.3
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    expected = brute_force(corpus, queries, 5)
    for c, q in ((corpus, queries), (sparse.csr_matrix(corpus), sparse.csr_matrix(queries))):
        idx, scores = top_k(c, q, 5, block_cells=block_cells)
        for row, want in enumerate(expected):
            got = [
                (int(j), float(s)) for j, s in zip(idx[row], scores[row], strict=False) if j >= 0
            ]
            assert [j for j, _ in got] == [j for j, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def test_top_k_ties_break_by_lower_index_in_sparse_results():
    corpus = sparse.csr_matrix(np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32))
    queries = sparse.csr_matrix(np.array([[1, 0]], dtype=np.float32))
    idx, scores = top_k(corpus, queries, 2)
    assert idx.tolist() == [[0, 1]]
    assert scores.tolist() == [[1.0, 1.0]]


def test_lexical_vectors_are_normalised_and_queries_ignore_unknown_words():
    corpus, queries = LexicalEmbedder().encode([EMBEDDINGS, VISION], ["embeddings zzzunknown", ""])
    norms = np.sqrt(np.asarray(corpus.multiply(corpus).sum(axis=1)).ravel())
    assert norms == pytest.approx([1.0, 1.0])
    assert queries.shape == (2, corpus.shape[1])
    assert queries[1].nnz == 0
    sim = similarity(corpus, queries)
    assert sim[0, 0] > 0 and sim[1, 0] == 0
