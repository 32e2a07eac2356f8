"""Alignment: pair two tools' capabilities one-to-one, and find each query's top-k capabilities.

**Pairing** (``align``): the similarity matrix between A's and B's capabilities (cosine of their
embeddings) goes through an optimal assignment (``scipy.optimize.linear_sum_assignment``, the
Hungarian method) that maximises the total similarity of the pairs, after every similarity
below the threshold has been set to 0. Each capability is in at most one pair, so a capability
of B that is the best match of two of A's capabilities is given to the one where the total is
higher, instead of both (as a greedy nearest-neighbour pass would do). Pairs scoring below the
threshold are dropped: those capabilities are "only in A" / "only in B".

The threshold is the embedder's ``thresholds.align`` (lexical: **0.25**; see ``embed.py`` for
how it was chosen and the neural ones). Results are deterministic: inputs are processed in the
order given, ties are broken by position, and outputs are sorted by similarity then position.

**Top-k** (``top_k``): for each query row, the k corpus rows with the highest positive
similarity, computed block by block so memory stays bounded (dense BLAS for provider vectors,
sparse products for lexical ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from decomposer.matching.embed import Dense, Embedder, LexicalEmbedder, Vectors

BLOCK_CELLS = 16_000_000  # similarity cells held at once per block (64 MB of float32)


@dataclass(frozen=True)
class Pair:
    a: int  # index into A's list
    b: int  # index into B's list
    similarity: float


@dataclass(frozen=True)
class Alignment:
    shared: list[Pair]
    only_a: list[int]
    only_b: list[int]
    threshold: float
    model: str = ""


def similarity(a: Vectors, b: Vectors) -> Dense:
    """Cosine similarities of L2-normalised rows, as a dense ``len(a) × len(b)`` matrix."""
    product: Any = a @ b.T
    dense = product.toarray() if sparse.issparse(product) else np.asarray(product)
    out: Dense = np.clip(dense.astype(np.float32), -1.0, 1.0)
    return out


def assign(sim: Dense, threshold: float) -> Alignment:
    """Optimal one-to-one pairs of rows and columns with similarity ≥ ``threshold``."""
    n_a, n_b = sim.shape
    if n_a == 0 or n_b == 0:
        return Alignment([], list(range(n_a)), list(range(n_b)), threshold)
    # Rounded so float noise in the last bits cannot flip an otherwise tied assignment.
    gain = np.where(sim >= threshold, np.round(sim.astype(np.float64), 6), 0.0)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    values = sim[rows, cols]
    keep = values >= threshold
    pairs = [
        Pair(r, c, round(v, 4))
        for r, c, v in zip(
            rows[keep].tolist(), cols[keep].tolist(), values[keep].tolist(), strict=True
        )
    ]
    pairs.sort(key=lambda p: (-p.similarity, p.a, p.b))
    used_a = {p.a for p in pairs}
    used_b = {p.b for p in pairs}
    return Alignment(
        pairs,
        [i for i in range(n_a) if i not in used_a],
        [j for j in range(n_b) if j not in used_b],
        threshold,
    )


def align(embedder: Embedder, a_texts: Sequence[str], b_texts: Sequence[str]) -> Alignment:
    """Embed both tools' capability texts together and pair them (see the module doc).

    The lexical embedder takes its fast path (``lexpair``: same matrix, no SciPy matrices)."""
    if isinstance(embedder, LexicalEmbedder):
        sim = embedder.pair_similarity(a_texts, b_texts)
    else:
        vectors, _ = embedder.encode([*a_texts, *b_texts])
        sim = similarity(*_split(vectors, len(a_texts)))
    result = assign(sim, embedder.thresholds.align)
    return Alignment(result.shared, result.only_a, result.only_b, result.threshold, embedder.model)


def _split(vectors: Vectors, n: int) -> tuple[Vectors, Vectors]:
    if sparse.issparse(vectors):
        matrix = sparse.csr_matrix(vectors)
        return matrix[:n], matrix[n:]
    return vectors[:n], vectors[n:]


def top_k(
    corpus: Vectors, queries: Vectors, k: int, *, block_cells: int = BLOCK_CELLS
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Per query, the ``k`` best corpus rows with similarity > 0, best first.

    Returns ``(indices, scores)``, both ``n_queries × k``; unused slots hold -1 and 0. Rows are
    ordered by score, then lower corpus index; the same input always gives the same result.
    """
    n_q, n_c = queries.shape[0], corpus.shape[0]
    k = max(1, min(k, n_c)) if n_c else 1
    indices = np.full((n_q, k), -1, dtype=np.int64)
    scores = np.zeros((n_q, k), dtype=np.float32)
    if n_q == 0 or n_c == 0:
        return indices, scores
    step = max(1, block_cells // max(n_c, 1))
    is_sparse = sparse.issparse(corpus)
    corpus_t = sparse.csr_matrix(corpus).T.tocsc() if is_sparse else np.ascontiguousarray(corpus).T
    query_m = sparse.csr_matrix(queries) if is_sparse else np.ascontiguousarray(queries)
    for start in range(0, n_q, step):
        stop = min(n_q, start + step)
        block = query_m[start:stop] @ corpus_t
        if sparse.issparse(block):
            _top_sparse(sparse.csr_matrix(block), k, indices[start:stop], scores[start:stop])
        else:
            _top_dense(
                np.asarray(block, dtype=np.float32), k, indices[start:stop], scores[start:stop]
            )
    return indices, scores


def _top_dense(
    block: Dense, k: int, out_i: npt.NDArray[np.int64], out_s: npt.NDArray[np.float32]
) -> None:
    n_c = block.shape[1]
    if k < n_c:
        part = np.argpartition(block, n_c - k, axis=1)[:, n_c - k :]
    else:
        part = np.broadcast_to(np.arange(n_c), block.shape).copy()
    vals = np.take_along_axis(block, part, axis=1)
    # Best first; equal scores by lower index (lexsort: last key is primary).
    order = np.lexsort((part, -vals), axis=1)
    part = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    keep = vals > 0
    out_i[:, : part.shape[1]] = np.where(keep, part, -1)
    out_s[:, : part.shape[1]] = np.where(keep, vals, 0.0)


def _top_sparse(
    block: sparse.csr_matrix, k: int, out_i: npt.NDArray[np.int64], out_s: npt.NDArray[np.float32]
) -> None:
    indptr, cols, data = block.indptr, block.indices, block.data
    for row in range(block.shape[0]):
        lo, hi = indptr[row], indptr[row + 1]
        if lo == hi:
            continue
        c = cols[lo:hi]
        v = data[lo:hi]
        positive = v > 0
        c, v = c[positive], v[positive]
        if len(v) > k:
            part = np.argpartition(-v, k - 1)[:k]
            # Include everything tied with the k-th score so ties resolve by index.
            cut = v[part].min()
            part = np.flatnonzero(v >= cut)
            c, v = c[part], v[part]
        order = np.lexsort((c, -v))[:k]
        out_i[row, : len(order)] = c[order]
        out_s[row, : len(order)] = v[order]
