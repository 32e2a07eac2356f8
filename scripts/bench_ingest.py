"""Ingest + chunk benchmark on the real vendor docs in ../shared/corpus.

Prints, per tool: documents, chunks, source tokens, prompt tokens sent per source token (the
rendered system+user messages plus the JSON schema the provider receives, for every call), and
ingest+chunk time as a median over repeats, with peak memory. The baseline, run in the same
process on the same documents, sends every chunk in its own call (no packing of small pages
into one request): the ratio shows what packing saves.

    .venv/bin/python scripts/bench_ingest.py [--repeats 7] [--budget 3000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from decomposer.calls.prompts import Prompt, load_prompt
from decomposer.core.tokens import estimate_tokens
from decomposer.extraction.run import Piece, context_for, pack_calls
from decomposer.extraction.schema import Extraction
from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS, TextChunk, chunk_document
from decomposer.ingest.documents import ingest
from decomposer.ingest.sources import SourceDocument, load_sources
from decomposer.store import open_store
from decomposer.store.models import Chunk as ChunkRow
from decomposer.store.tools import add_tool
from machine import describe

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TOOLS = ("mistral-api", "llama-4")


def as_rows(doc: SourceDocument, chunks: Sequence[TextChunk]) -> list[Piece]:
    return [
        (ChunkRow(id=c.id, heading=c.heading, text=c.text, tokens=c.tokens), doc.source)
        for c in chunks
    ]


def prompt_tokens(prompt: Prompt, tool: str, groups: Sequence[Sequence[Piece]]) -> int:
    """Tokens the provider receives: rendered messages plus the JSON schema, for every call."""
    schema = estimate_tokens(json.dumps(Extraction.model_json_schema()))
    total = 0
    for group in groups:
        messages = prompt.render(context_for(tool, group))
        total += schema + sum(estimate_tokens(m["content"]) for m in messages)
    return total


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def end_to_end(paths: list[str], budget: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        store = open_store(f"sqlite:///{home}/bench.db")
        with store.transaction() as session:
            add_tool(session, "Bench", now=datetime.now(UTC))
        ingest(store, "bench", paths, now=datetime.now(UTC), budget=budget)
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=int, default=DEFAULT_CHUNK_TOKENS)
    args = parser.parse_args()
    if not CORPUS.is_dir():
        raise SystemExit(f"corpus not found at {CORPUS}")
    prompt = load_prompt()
    print(f"machine: {describe()}")
    print(f"budget: {args.budget} tokens per chunk; repeats: {args.repeats}\n")
    header = (
        "tool",
        "docs",
        "chunks",
        "calls",
        "src tok",
        "prompt/src",
        "unpacked",
        "load+chunk ms",
        "read-only ms",
        "ingest ms",
        "peak MiB",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for tool in TOOLS:
        print(bench_tool(tool, prompt, args.budget, args.repeats))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the whole benchmark process: {rss:.0f} MiB")


def bench_tool(tool: str, prompt: Prompt, budget: int, repeats: int) -> str:
    paths = [str(CORPUS / tool)]
    docs, _ = load_sources(paths)
    pieces = [p for d in docs for p in as_rows(d, chunk_document(d.source, d.text, budget))]
    groups = pack_calls(pieces, budget)
    source_tokens = sum(estimate_tokens(d.text) for d in docs)
    sent = prompt_tokens(prompt, tool, groups)
    unpacked = prompt_tokens(prompt, tool, [[p] for p in pieces])

    def load_and_chunk() -> None:
        for doc in load_sources(paths)[0]:
            chunk_document(doc.source, doc.text, budget)

    def read_only() -> None:
        for file in sorted((CORPUS / tool).iterdir()):
            file.read_bytes()

    t_chunk = median_seconds(load_and_chunk, repeats)
    t_read = median_seconds(read_only, repeats)
    t_ingest = median_seconds(lambda: end_to_end(paths, budget), max(3, repeats // 2))
    tracemalloc.start()
    load_and_chunk()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return (
        f"| {tool} | {len(docs)} | {len(pieces)} | {len(groups)} | {source_tokens:,} | "
        f"{sent / source_tokens:.3f} | {unpacked / source_tokens:.3f} | {t_chunk * 1000:.1f} | "
        f"{t_read * 1000:.2f} | {t_ingest * 1000:.0f} | {peak:.1f} |"
    )


if __name__ == "__main__":
    main()
