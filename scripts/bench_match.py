"""Benchmark the match graph's core: N capabilities × M queries, top-k per query.

Two scenarios, each in its own subprocess so its peak RSS is its own:

- ``lexical``: the offline embedder (``embed.LexicalEmbedder``: tokenise, stem, fit TF-IDF on
  the capabilities, transform the queries) and ``align.top_k`` over sparse vectors;
- ``dense``: precomputed, L2-normalised 1024-d float32 vectors (what mistral-embed returns,
  already cached) and ``align.top_k`` through numpy's BLAS matrix product.

Synthetic text: pseudo-words drawn from a Zipf-like distribution over a 30,000-word
vocabulary (name 3 words, description 30, unique line 12; queries 2–5 words), seeded, so every
run sees the same data. The store is not involved (its cost is writing ~100k edge rows).

    .venv/bin/python scripts/bench_match.py                       # both, 100k × 10k, top 10
    .venv/bin/python scripts/bench_match.py --capabilities 20000 --queries 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

from decomposer.matching.align import top_k
from decomposer.matching.embed import LexicalEmbedder, capability_text
from machine import describe

SYLLABLES = [a + b for a in "bcdfghklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        n = int(rng.integers(2, 4))
        words.add("".join(SYLLABLES[int(i)] for i in rng.integers(0, len(SYLLABLES), n)))
    return sorted(words)


def sampler(vocab: list[str], rng: np.random.Generator) -> Any:
    ranks = np.arange(1, len(vocab) + 1, dtype=np.float64)
    p = 1.0 / ranks**1.05
    cdf = np.cumsum(p / p.sum())

    def draw(n: int) -> str:
        picks = np.minimum(np.searchsorted(cdf, rng.random(n)), len(vocab) - 1)
        return " ".join(vocab[int(i)] for i in picks)

    return draw


def texts(n_caps: int, n_queries: int, seed: int = 1) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    draw = sampler(vocabulary(30_000, rng), rng)
    caps = [capability_text(draw(3), draw(30), draw(12)) for _ in range(n_caps)]
    queries = [draw(int(rng.integers(2, 6))) for _ in range(n_queries)]
    return caps, queries


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def blas_info() -> dict[str, Any]:
    info: dict[str, Any] = {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    try:
        from threadpoolctl import threadpool_info  # type: ignore[import-not-found,unused-ignore]

        info["threadpools"] = [
            {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for p in threadpool_info()
        ]
    except ImportError:
        config = np.show_config(mode="dicts")
        blas = (config or {}).get("Build Dependencies", {}).get("blas", {})
        info["blas"] = {k: blas.get(k) for k in ("name", "version")}
    return info


def run_lexical(n_caps: int, n_queries: int, k: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    caps, queries = texts(n_caps, n_queries)
    t1 = time.perf_counter()
    corpus, qv = LexicalEmbedder().encode(caps, queries)
    t2 = time.perf_counter()
    idx, _scores = top_k(corpus, qv, k)
    t3 = time.perf_counter()
    return {
        "scenario": "lexical",
        "generate_s": round(t1 - t0, 2),
        "encode_s": round(t2 - t1, 2),
        "top_k_s": round(t3 - t2, 2),
        "total_s": round(t3 - t1, 2),
        "vocabulary": corpus.shape[1],
        "corpus_nnz": int(corpus.nnz),
        "edges": int((idx >= 0).sum()),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def run_dense(n_caps: int, n_queries: int, k: int, dims: int = 1024) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    t0 = time.perf_counter()
    corpus = rng.standard_normal((n_caps, dims), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = rng.standard_normal((n_queries, dims), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    t1 = time.perf_counter()
    idx, _scores = top_k(corpus, queries, k)
    t2 = time.perf_counter()
    return {
        "scenario": f"dense {dims}-d",
        "generate_s": round(t1 - t0, 2),
        "top_k_s": round(t2 - t1, 2),
        "total_s": round(t2 - t1, 2),
        "edges": int((idx >= 0).sum()),
        "peak_rss_mb": round(peak_rss_mb()),
        **blas_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capabilities", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--scenario", choices=("lexical", "dense", "both"), default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fn = run_lexical if args.scenario == "lexical" else run_dense
        print(json.dumps(fn(args.capabilities, args.queries, args.top_k)))
        return
    print(
        f"{describe()}, numpy {np.__version__}; "
        f"{args.capabilities:,} capabilities × {args.queries:,} queries, top {args.top_k}"
    )
    scenarios = ("lexical", "dense") if args.scenario == "both" else (args.scenario,)
    for name in scenarios:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--scenario",
            name,
            "--capabilities",
            str(args.capabilities),
            "--queries",
            str(args.queries),
            "--top-k",
            str(args.top_k),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        print(json.dumps(json.loads(out.strip().splitlines()[-1]), indent=1))


if __name__ == "__main__":
    main()
