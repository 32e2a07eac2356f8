"""Benchmark `regenerate`: a synthetic catalogue of 1,000 tools x 15 capabilities, 10,000 pairs.

Run: ``.venv/bin/python scripts/bench_regenerate.py [--tools 1000] [--keep DIR] [--rounds 3]``

Tools are placed in category groups (40 groups of 20 and 8 of 25 for 1,000 tools), so
``--all`` pairs exactly 40*190 + 8*300 = 10,000 of them. Each capability has two grounded
evidence quotes. Reports, for a cold run (every page written, md + html + json) and a second run
with nothing changed: pairs/s, files/s, wall time, CPU time and peak RSS. Targets (issue 3, again
in issue 12): >= 500 pairs/s cold with the alignment on, <= 500 MB, >= 20,000 pages/s checked
when nothing changed.

Baseline in the same process (issue 12): cold runs of the path as it was before issue 12 (per
pair, SciPy sparse TF-IDF of both tools' texts; each file through ``mkstemp``), alternating with
the current path, and a check that both wrote the same bytes. The median cost of creating one
file on the output disk is printed first: on a shared VM disk it is a large part of a page's
cost. Peak RSS is the process's, so the current path runs first.

Each cold run writes into a new folder after ``sync`` (earlier runs' folders are deleted at the
end), so neither the write-back of the last run's 1.3 GB nor ext4's skipping of just-freed
inodes is charged to it; ``rewrite`` then writes every page again over the existing files (a
template or code change), where replacing 30,000 inodes is the run's own cost.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from decomposer.catalog.snapshot import load_snapshot
from decomposer.matching.embed import LexicalEmbedder
from decomposer.pages import regenerate
from decomposer.pages.model import Options
from decomposer.pages.regenerate import MANIFEST, all_pairs, write_pages
from decomposer.pages.render import FORMATS
from decomposer.store import open_store
from decomposer.store.catalogue_models import CatalogueEntry
from decomposer.store.models import Capability, Document, Evidence, Tool
from machine import describe

NOW = datetime(2025, 7, 1, tzinfo=UTC)
CATEGORIES = (
    "models",
    "text-generation",
    "function-calling",
    "structured-output",
    "embeddings",
    "code",
    "vision",
    "fine-tuning",
    "batch",
    "deployment",
    "platform",
    "pricing",
)
WORDS = (
    "fast",
    "typed",
    "streaming",
    "batched",
    "grounded",
    "multilingual",
    "cached",
    "secure",
    "private",
    "hosted",
    "open",
    "scalable",
    "tuned",
    "compact",
    "robust",
    "portable",
)


def group_sizes(tools: int) -> list[int]:
    if tools == 1000:
        return [20] * 40 + [25] * 8
    size = 20
    return [size] * (tools // size) + ([tools % size] if tools % size else [])


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def build(url: str, tools: int, caps: int) -> None:
    rng = random.Random(42)
    store = open_store(url)
    groups = [i for i, size in enumerate(group_sizes(tools)) for _ in range(size)]
    tool_rows, doc_rows, entry_rows, cap_rows, ev_rows = [], [], [], [], []
    for t in range(tools):
        slug = f"tool-{t:04d}"
        tool_rows.append(
            {
                "id": t + 1,
                "slug": slug,
                "name": f"Tool {t:04d}",
                "type": "API",
                "vendor": f"Vendor {t % 97}",
                "homepage": f"https://{slug}.example",
                "created_at": NOW,
            }
        )
        doc_rows.append(
            {
                "id": t + 1,
                "tool_id": t + 1,
                "source": f"https://{slug}.example/docs",
                "source_key": f"https://{slug}.example/docs",
                "title": f"{slug} docs",
                "media_type": "text/markdown",
                "content_hash": "0" * 64,
                "text": "docs",
                "ingested_at": NOW,
                "updated_at": NOW,
            }
        )
        entry_rows.append(
            {
                "tool_id": t + 1,
                "categories": [f"group-{groups[t]}"],
                "pricing_model": "paid",
                "free_tier": t % 3 == 0,
                "price_amount": f"{rng.randint(1, 500) / 100:.2f}",
                "price_currency": "USD",
                "price_unit": "1M input tokens",
                "signals": {
                    "github_stars": rng.randint(0, 50_000),
                    "monthly_downloads": rng.randint(0, 5_000_000),
                    "integrations": rng.randint(0, 200),
                    "last_release": "2025-03-01",
                },
                "source": "bench",
                "content_hash": "x",
                "imported_at": NOW,
                "revision": 1,
            }
        )
        for c in range(caps):
            cid = f"cap_{t:04d}_{c:02d}"
            cap_rows.append(
                {
                    "id": cid,
                    "tool_id": t + 1,
                    "key": f"k{c}",
                    "name": f"Capability {c} of {slug}",
                    "category": CATEGORIES[c % len(CATEGORIES)],
                    "description": sentence(rng, 40),
                    "unique": sentence(rng, 18),
                    "vs_alternatives": sentence(rng, 18),
                    "status": "approved",
                    "version": 1,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
            for q in range(2):
                ev_rows.append(
                    {
                        "capability_id": cid,
                        "document_id": t + 1,
                        "quote": sentence(rng, 12),
                        "start": q,
                        "end": q + 1,
                        "score": 100.0,
                        "grounded": True,
                    }
                )
    with store.transaction() as s:
        for model, rows in (
            (Tool, tool_rows),
            (Document, doc_rows),
            (CatalogueEntry, entry_rows),
            (Capability, cap_rows),
            (Evidence, ev_rows),
        ):
            s.execute(insert(model), rows)
    store.dispose()


def peak_rss_mb() -> float:
    """The larger of this process's peak and its largest forked page worker's."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


class SparseLexical:
    """Baseline aligner: the lexical embedder without its fast path, i.e. SciPy's sparse
    TF-IDF fitted per pair (``encode``), as every page did before issue 12."""

    def __init__(self) -> None:
        self.inner = LexicalEmbedder()
        self.model = self.inner.model
        self.thresholds = self.inner.thresholds

    def encode(self, corpus: Sequence[str], queries: Sequence[str] = ()) -> tuple[Any, Any]:
        return self.inner.encode(corpus, queries)


def legacy_write(path: Path, text: str) -> None:
    """Baseline page write, as before issue 12: ``mkstemp``, text file, chmod, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@contextmanager
def baseline_path() -> Iterator[None]:
    """Run ``write_pages`` as before issue 12 (sparse alignment, ``mkstemp`` writes)."""
    patches = {"LexicalEmbedder": SparseLexical, "write_atomic": legacy_write}
    saved = {name: vars(regenerate)[name] for name in patches}
    vars(regenerate).update(patches)
    try:
        yield
    finally:
        vars(regenerate).update(saved)


@contextmanager
def no_files() -> Iterator[None]:
    """Render every page but write none: the run's cost without the disk's."""
    patches = {
        "write_atomic": lambda path, text: None,
        "stage_page": lambda folder, name, text: "",
        "publish_page": lambda staged, path: None,
    }
    saved = {name: vars(regenerate)[name] for name in patches}
    vars(regenerate).update(patches)
    try:
        yield
    finally:
        vars(regenerate).update(saved)


def cpu_seconds() -> float:
    """CPU of this process and of the page workers it forked and reaped."""
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_run(url: str, out_dir: Path, options: Options, workers: int = 0) -> dict[str, float]:
    store = open_store(url)
    cpu = cpu_seconds()
    started = time.perf_counter()
    with store.transaction() as s:
        snapshot = load_snapshot(s, None)
    loaded = time.perf_counter()
    pairs = all_pairs(snapshot, options.include_unreviewed)
    report = write_pages(
        snapshot, out_dir, pairs, options=options, formats=list(FORMATS), workers=workers
    )
    done = time.perf_counter()
    store.dispose()
    pages = time.perf_counter() - loaded
    return {
        "pairs": len(pairs),
        "written": len(report.written),
        "unchanged": report.unchanged,
        "load_s": loaded - started,
        "pages_s": pages,
        "total_s": done - started,
        "cpu_s": cpu_seconds() - cpu,
        "sides_s": report.sides_seconds,
        "check_s": report.pages_seconds,
        "rss_mb": peak_rss_mb(),
    }


def file_create_us(folder: Path, n: int = 300) -> float:
    """Median cost of creating one small file in ``folder``'s file system (the disk's share)."""
    probe = Path(tempfile.mkdtemp(prefix=".probe-", dir=folder))
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fd = os.open(probe / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x" * 4096)
        os.close(fd)
        times.append(time.perf_counter() - t0)
    shutil.rmtree(probe)
    return statistics.median(times) * 1e6


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if not p.name.startswith(".")
    }


def show(label: str, r: dict[str, float], tools: int) -> None:
    files = r["written"] + r["unchanged"]
    print(
        f"{label:9} {int(r['pairs']):,} pairs, {int(r['written']):,} files "
        f"{'rendered, none written' if label == 'no files' else 'written'}, "
        f"{int(r['unchanged']):,} unchanged | load {r['load_s']:.2f}s, pages "
        f"{r['pages_s']:.2f}s -> {r['pairs'] / r['pages_s']:,.0f} pairs/s "
        f"({files / r['pages_s']:,.0f} files/s); total {r['total_s']:.2f}s "
        f"-> {r['pairs'] / r['total_s']:,.0f} pairs/s; CPU {r['cpu_s']:.1f}s "
        f"({1000 * r['cpu_s'] / r['pairs']:.2f} ms/pair); peak RSS {r['rss_mb']:.0f} MB"
    )
    print(
        f"          of which: {tools:,} tool sides built+hashed in "
        f"{r['sides_s']:.2f}s; per-pair phase {r['check_s']:.2f}s -> "
        f"{r['pairs'] / r['check_s']:,.0f} pairs/s ({files / r['check_s']:,.0f} files/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tools", type=int, default=1000)
    parser.add_argument("--caps", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="Use this folder (kept) instead of a temp one.")
    parser.add_argument("--rounds", type=int, default=1, help="Cold runs of each path (median).")
    parser.add_argument(
        "--no-baseline", action="store_true", help="Skip the pre-issue-12 path (cold runs)."
    )
    parser.add_argument(
        "--no-files",
        action="store_true",
        help="Also run cold without writing any file (rendering and alignment alone).",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="Page worker processes for the current path (0: one per core, as regenerate does).",
    )
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-regenerate-"))
    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'bench.db'}"
    if not (work / "bench.db").exists():
        t0 = time.perf_counter()
        build(url, args.tools, args.caps)
        print(
            f"built {args.tools} tools x {args.caps} capabilities in "
            f"{time.perf_counter() - t0:.1f}s"
        )
    options = Options(as_of=date(2025, 7, 15))
    print(f"machine: {describe()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"creating one file on this disk: {file_create_us(work):,.0f} us (median of 300)")
    for stale in work.glob("pages*"):  # a kept folder's pages from an earlier invocation
        shutil.rmtree(stale)
    rates: dict[str, list[float]] = {"cold": [], "baseline": []}
    last: dict[str, Path] = {}
    for round_ in range(args.rounds):
        paths = ["cold"] if args.no_baseline else ["cold", "baseline"]
        for label in paths if round_ % 2 == 0 else paths[::-1]:  # alternate who goes first
            # A new folder per run, none deleted until the end: ext4 skips inodes freed in
            # the last minute when it allocates one, so writing right after deleting 30,000
            # pages would charge the harness's deletions to the run ("rewrite" below measures
            # replacing pages, where that cost is the run's own).
            folder = work / f"pages-{label}-{round_}"
            os.sync()  # the last run's dirty pages are written back before this one starts
            if label == "baseline":
                with baseline_path():
                    r = one_run(url, folder, options, workers=1)  # the old path was serial
            else:
                r = one_run(url, folder, options, workers=args.workers)
            show(label, r, args.tools)
            rates[label].append(r["pairs"] / r["total_s"])
            last[label] = folder
    out_dir = last["cold"]
    r = one_run(url, out_dir, options, workers=args.workers)
    show("unchanged", r, args.tools)
    (out_dir / MANIFEST).unlink()
    os.sync()
    r = one_run(url, out_dir, options, workers=args.workers)
    show("rewrite", r, args.tools)  # every page replaced: a template or code change
    print("          (rewrite: every page written again over its existing file)")
    if args.no_files:
        with no_files():
            r = one_run(url, work / "pages-not-written", options, workers=args.workers)
        show("no files", r, args.tools)
    new = statistics.median(rates["cold"])
    print(f"cold, median of {args.rounds}: {new:,.0f} pairs/s end to end", end="")
    if rates["baseline"]:
        old = statistics.median(rates["baseline"])
        same = digests(out_dir) == digests(last["baseline"])
        print(
            f"; baseline (pre-issue-12 path, same process) {old:,.0f} pairs/s; "
            f"ratio {new / old:.2f}x; pages byte-identical to the baseline's: {same}"
        )
    else:
        print()
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
