"""Benchmark `export` / `import` (issue 10): rows/s on the demo store and on a synthetic one.

Run: ``.venv/bin/python scripts/bench_transfer.py [--repeats 5] [--tools 200]``

The demo store is built the way ``make demo`` builds it (both sample tools ingested and
extracted offline from the recordings, then reviewed); the synthetic one is
``bench_regenerate``'s catalogue (``--tools`` x 15 capabilities, two quotes each). Baselines in
the same process: for export, reading every exported row with SQLAlchemy Core and nothing else;
for import, a copy of the same store through SQLite's online backup API (``decomposer backup``).
Medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from bench_regenerate import build as build_synthetic
from decomposer.cli.app import main as cli
from decomposer.store import open_store
from decomposer.store.backup import backup_sqlite
from decomposer.store.engine import Store
from decomposer.store.transfer import export_store, import_store, tables
from machine import describe

REPO = Path(__file__).resolve().parents[1]
DEMO = [
    ("tool", "add", "Mistral API", "--type", "API", "--vendor", "Mistral AI"),
    ("tool", "add", "Llama 4", "--type", "Model", "--vendor", "Meta"),
    ("ingest", "mistral-api", str(REPO / "fixtures/docs/mistral-api")),
    ("ingest", "llama-4", str(REPO / "fixtures/docs/llama-4")),
    ("extract", "mistral-api", "--replay", str(REPO / "fixtures/recordings")),
    ("extract", "llama-4", "--replay", str(REPO / "fixtures/recordings")),
    ("approve", "--tool", "mistral-api", "--reviewer", "bench", "--where", "category!=pricing"),
    ("tool", "import", str(REPO / "fixtures/catalogue.toml")),
    ("match", "import-queries", str(REPO / "fixtures/queries.csv")),
    ("match", "run"),
]


def median_time(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_all(store: Store) -> int:
    with store.engine.connect() as conn:
        return sum(len(conn.execute(select(t)).all()) for t in tables())


def measure(name: str, store: Store, work: Path, repeats: int) -> None:
    buffer = io.StringIO()
    rows = export_store(store, buffer, version="bench").total
    dump = buffer.getvalue()
    export_s = median_time(lambda: export_store(store, io.StringIO(), version="bench"), repeats)
    read_s = median_time(lambda: read_all(store), repeats)

    counter = iter(range(10**6))

    def restore() -> None:
        target = open_store(f"sqlite:///{work / f'{name}-import-{next(counter)}.db'}")
        try:
            import_store(target, dump.splitlines())
        finally:
            target.dispose()

    def copy() -> None:
        backup_sqlite(store, work / f"{name}-backup-{next(counter)}.db")

    def fresh() -> None:
        open_store(f"sqlite:///{work / f'{name}-empty-{next(counter)}.db'}").dispose()

    import_s = median_time(restore, repeats) - median_time(fresh, repeats)
    backup_s = median_time(copy, repeats)
    size = len(dump.encode())
    print(
        f"{name}: {rows:,} rows, {size / 1e6:.2f} MB of JSON Lines\n"
        f"  export {export_s * 1e3:8.1f} ms  {rows / export_s:10,.0f} rows/s  "
        f"(read-only baseline {read_s * 1e3:.1f} ms: x{export_s / read_s:.1f})\n"
        f"  import {import_s * 1e3:8.1f} ms  {rows / import_s:10,.0f} rows/s  "
        f"(online backup baseline {backup_s * 1e3:.1f} ms: x{import_s / backup_s:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tools", type=int, default=200)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "demo"
        for command in DEMO:
            if cli(["--home", str(home), *command]) != 0:
                raise SystemExit(f"demo build failed at {command}")
        demo = open_store(f"sqlite:///{home / 'decomposer.db'}")
        measure("demo", demo, work, args.repeats)
        demo.dispose()
        url = f"sqlite:///{work / 'synthetic.db'}"
        build_synthetic(url, args.tools, 15)
        synthetic = open_store(url)
        measure(f"synthetic ({args.tools} tools)", synthetic, work, args.repeats)
        synthetic.dispose()


if __name__ == "__main__":
    main()
