"""Benchmark `regenerate`: a synthetic catalogue of 1,000 tools x 15 capabilities, 10,000 pairs.

Run: ``.venv/bin/python scripts/bench_regenerate.py [--tools 1000] [--keep DIR]``

Tools are placed in category groups (40 groups of 20 and 8 of 25 for 1,000 tools), so
``--all`` pairs exactly 40*190 + 8*300 = 10,000 of them. Each capability has two grounded
evidence quotes. Reports, for a cold run (every page written, md + html + json) and a second run
with nothing changed: pairs/s, files/s, wall time and peak RSS. Targets (issue 3): >= 500 pages/s
cold on 2 cores, <= 500 MB, >= 20,000 pages/s checked when nothing changed.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import insert

from decomposer.catalog.snapshot import load_snapshot
from decomposer.pages.model import Options
from decomposer.pages.regenerate import all_pairs, write_pages
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_run(url: str, out_dir: Path, options: Options) -> dict[str, float]:
    store = open_store(url)
    started = time.perf_counter()
    with store.transaction() as s:
        snapshot = load_snapshot(s, None)
    loaded = time.perf_counter()
    pairs = all_pairs(snapshot, options.include_unreviewed)
    report = write_pages(snapshot, out_dir, pairs, options=options, formats=list(FORMATS))
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
        "sides_s": report.sides_seconds,
        "check_s": report.pages_seconds,
        "rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tools", type=int, default=1000)
    parser.add_argument("--caps", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="Use this folder (kept) instead of a temp one.")
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
    out_dir = work / "pages"
    shutil.rmtree(out_dir, ignore_errors=True)
    options = Options(as_of=date(2025, 7, 15))
    print(f"machine: {describe()}")
    for label in ("cold", "unchanged"):
        r = one_run(url, out_dir, options)
        files = r["written"] + r["unchanged"]
        print(
            f"{label:9} {int(r['pairs']):,} pairs, {int(r['written']):,} files written, "
            f"{int(r['unchanged']):,} unchanged | load {r['load_s']:.2f}s, pages "
            f"{r['pages_s']:.2f}s -> {r['pairs'] / r['pages_s']:,.0f} pairs/s "
            f"({files / r['pages_s']:,.0f} files/s); total {r['total_s']:.2f}s "
            f"-> {r['pairs'] / r['total_s']:,.0f} pairs/s; peak RSS {r['rss_mb']:.0f} MB"
        )
        print(
            f"          of which: {args.tools:,} tool sides built+hashed in "
            f"{r['sides_s']:.2f}s; per-pair phase {r['check_s']:.2f}s -> "
            f"{r['pairs'] / r['check_s']:,.0f} pairs/s ({files / r['check_s']:,.0f} files/s)"
        )
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
