"""Lexical similarity of two short capability lists, without SciPy: the alignment's fast path.

``LexicalEmbedder.encode`` fits TF-IDF on the texts it is given and returns SciPy sparse
matrices; for two tools of ~15 capabilities each, building those matrices costs about 100 times
the arithmetic. Page regeneration aligns every pair of tools, and a tool is on ~20 pages, so:

- each *group* (one tool's capability texts) is tokenised and counted once and cached (keyed by
  the texts themselves, i.e. by content): distinct stems in first-use order, per text its stems'
  columns and ``1 + ln tf``;
- per pair only what depends on both groups is computed, with small NumPy arrays: the pair's
  vocabulary and IDF (the IDF is fitted on both groups, as ``encode`` does), weights, row norms
  and the dot products.

The result is the same ``float32`` matrix, bit for bit, as ``similarity`` of ``encode``'s
vectors, so pages do not change: every float operation is the same one, on the same values, in
the same order. Row norms go through the same ``np.add.reduceat`` call on the same row segments
(columns ascending) as SciPy's row sum; each dot product adds its terms one at a time in
descending column order, which is the order of SciPy's ``csr_matmat`` here (the normalised
matrix comes out of the ``diags @ matrix`` product with each row's columns reversed). Adding a
zero term leaves a non-negative sum unchanged, so the dense sums equal the sparse ones.
``tests/test_lexpair.py`` checks the equality on random texts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
MAX_GROUPS = 2048  # cached groups per encoder: a tool's texts are one group, 10-70 kB
CUMSUM_CELLS = 1_000_000  # products held at once for the dot products; above, a column loop


@dataclass(frozen=True)
class Group:
    """One list of texts, tokenised: what every pair involving it reuses."""

    index: dict[str, int]  # distinct stem -> column, first use first (the group's own columns)
    rows: Ints  # entry -> text; entries grouped by text, columns ascending within a text
    cols: Ints  # entry -> column
    ltf: Matrix  # entry -> 1 + ln(term count), float32
    sizes: Ints  # entries per text

    @property
    def n(self) -> int:
        return len(self.sizes)


class PairEncoder:
    """Similarity matrices of pairs of text lists; each list is tokenised once (cached)."""

    def __init__(
        self,
        tokenize: Callable[[str], list[str]],
        max_groups: int = MAX_GROUPS,
        cumsum_cells: int = CUMSUM_CELLS,
    ) -> None:
        self._tokenize = tokenize
        self._groups: dict[tuple[str, ...], Group] = {}
        self._max_groups = max_groups
        self._cumsum_cells = cumsum_cells

    def group(self, texts: Sequence[str]) -> Group:
        key = tuple(texts)
        found = self._groups.get(key)
        if found is None:
            if len(self._groups) >= self._max_groups:
                self._groups.clear()
            found = self._groups[key] = self._build(key)
        return found

    def _build(self, texts: tuple[str, ...]) -> Group:
        index: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        counts: list[int] = []
        sizes: list[int] = []
        for row, text in enumerate(texts):
            tf: dict[int, int] = {}
            for stem in self._tokenize(text):
                col = index.get(stem)
                if col is None:
                    col = index[stem] = len(index)
                tf[col] = tf.get(col, 0) + 1
            for col in sorted(tf):
                rows.append(row)
                cols.append(col)
                counts.append(tf[col])
            sizes.append(len(tf))
        # Computed on a float32 array exactly as encode does (np.log of the float32 counts).
        ltf = (1.0 + np.log(np.asarray(counts, dtype=np.float32))).astype(np.float32)
        return Group(
            index=index,
            rows=np.asarray(rows, dtype=np.int64),
            cols=np.asarray(cols, dtype=np.int64),
            ltf=ltf,
            sizes=np.asarray(sizes, dtype=np.int64),
        )

    def similarity(self, a_texts: Sequence[str], b_texts: Sequence[str]) -> Matrix:
        """Cosine similarities (``len(a) × len(b)``), equal to ``similarity`` of ``encode``."""
        a, b = self.group(a_texts), self.group(b_texts)
        if a.n == 0 or b.n == 0:
            return np.zeros((a.n, b.n), dtype=np.float32)
        # The pair's vocabulary: A's stems, then B's new stems in B's order (encode's order).
        known = a.index
        b_map = np.fromiter((known.get(s, -1) for s in b.index), dtype=np.int64, count=len(b.index))
        new = b_map < 0
        n_new = int(new.sum())
        b_map[new] = len(known) + np.arange(n_new, dtype=np.int64)
        n_terms = len(known) + n_new
        b_cols = b_map[b.cols]
        order = np.lexsort((b_cols, b.rows))  # columns ascending within each text
        b_cols, b_rows, b_ltf = b_cols[order], b.rows[order], b.ltf[order]
        cols = np.concatenate((a.cols, b_cols))
        rows = np.concatenate((a.rows, b_rows + a.n))
        n_docs = a.n + b.n
        df = np.bincount(cols, minlength=n_terms)
        idf = (1.0 + np.log((1.0 + n_docs) / (1.0 + df))).astype(np.float32)
        weights = np.concatenate((a.ltf, b_ltf)) * idf[cols]
        sizes = np.concatenate((a.sizes, b.sizes))
        norms = np.zeros(n_docs, dtype=np.float32)
        filled = np.flatnonzero(sizes)
        if filled.size:
            starts = (np.cumsum(sizes) - sizes)[filled]
            norms[filled] = np.add.reduceat(weights * weights, starts)
        norms = np.sqrt(norms)
        norms[norms == 0] = 1.0
        inverse = 1.0 / norms
        unit = inverse[rows] * weights
        dense = np.zeros((n_docs, n_terms), dtype=np.float32)
        dense[rows, cols] = unit
        a_m, b_m = dense[: a.n], dense[a.n :]
        shared = np.flatnonzero(a_m.any(axis=0) & b_m.any(axis=0))[::-1]
        out: Matrix = _dots(a_m[:, shared], b_m[:, shared], self._cumsum_cells)
        return np.clip(out, -1.0, 1.0)


def _dots(a: Matrix, b: Matrix, cumsum_cells: int) -> Matrix:
    """``a @ b.T`` in float32, each cell summed term by term, left to right."""
    n_a, n_b, n_terms = a.shape[0], b.shape[0], a.shape[1]
    if n_terms == 0:
        return np.zeros((n_a, n_b), dtype=np.float32)
    if n_a * n_b * n_terms <= cumsum_cells:
        products = a[:, None, :] * b[None, :, :]
        sums: Matrix = np.cumsum(products, axis=2, dtype=np.float32)[:, :, -1]
        return np.ascontiguousarray(sums)
    total: Matrix = np.zeros((n_a, n_b), dtype=np.float32)
    for term in range(n_terms):
        total += np.outer(a[:, term], b[:, term])
    return total
