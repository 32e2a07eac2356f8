"""Contrast lines on the demo (replayed recordings) and on the real corpus (loopback fake
provider): how many capabilities with counterparts end with an approved-ready line, the
checker's rejections by cause, tokens and cost per line, and the prompt tokens a line costs
against the evidence tokens it carries.

* ``demo``: the bundled demo through the CLI (``extract`` and ``contrast`` with ``--replay``).
* ``corpus``: ``../shared/corpus`` (three vendors' real pages) extracted and contrasted through
  ``tests/support/fakeprovider.py`` (started on a free 127.0.0.1 port; its extraction quotes
  each document's first sentence, its contrast line quotes one quote of each tool). With
  ``--hostile-rate`` a seeded share of first contrast answers carries one of six faults the
  checker must refuse; the re-ask gets the clean line. Rejections there measure detection of
  injected faults, not a real model's error rate.

Cost is priced at ``mistral-small-latest`` list prices from the token counts (the fake provider
on a loopback host is $0). A second ``contrast`` on unchanged inputs must make zero calls.

    .venv/bin/python scripts/bench_contrast.py [--hostile-rate 0.3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from decomposer.calls.prompts import load_prompt
from decomposer.cli.app import main
from decomposer.contrast.run import plan
from decomposer.contrast.task import Contrast
from decomposer.core.config import Settings
from decomposer.core.tokens import estimate_tokens
from decomposer.providers.pricing import load_prices
from decomposer.store import open_store
from decomposer.store.contrast_models import ContrastLine
from decomposer.store.models import LLMCall
from machine import describe

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
CORPUS = REPO.parent / "shared" / "corpus"
FAKE_PROVIDER = REPO / "tests" / "support" / "fakeprovider.py"


def cli(*args: str) -> dict[str, Any] | None:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(list(args))
    if code != 0:
        raise SystemExit(f"decomposer {' '.join(args)} failed with {code}")
    text = buffer.getvalue()
    return json.loads(text) if args and "--json" in args else None


def evidence_figures() -> list[tuple[int, int]]:
    """Per planned line: (rendered prompt tokens incl. schema, evidence tokens it carries)."""
    settings = Settings.from_env()
    store = open_store(settings.database_url)
    prompt = load_prompt("contrast")
    schema = estimate_tokens(json.dumps(Contrast.model_json_schema()))
    with store.transaction() as session:
        todo, _, _ = plan(session, None, prompt.sha256)
    out = []
    for item in todo:
        messages = prompt.render(item.built.context)
        sent = sum(estimate_tokens(m["content"]) for m in messages) + schema
        ctx = item.built.context
        caps = [ctx["capability"], *(c for o in ctx["others"] for c in o["capabilities"])]
        quotes = sum(estimate_tokens(q["text"]) for c in caps for q in c["quotes"])
        out.append((sent, quotes))
    store.dispose()
    return out


def measure(label: str, contrast_args: list[str]) -> dict[str, Any]:
    figures = evidence_figures()
    started = time.process_time()
    report = cli("contrast", "--all", *contrast_args, "--json")
    cpu = time.process_time() - started
    again = cli("contrast", "--all", *contrast_args, "--json")
    assert report is not None and again is not None
    settings = Settings.from_env()
    store = open_store(settings.database_url)
    with store.transaction() as s:
        calls = list(s.scalars(select(LLMCall).where(LLMCall.task == "contrast")))
        lines = list(s.scalars(select(ContrastLine)))
    store.dispose()
    causes: Counter[str] = Counter(c for call in calls for c in (call.rejections or []))
    proposed = sum(line.status == "proposed" for line in lines)
    tokens_in = sum(c.input_tokens for c in calls)
    tokens_out = sum(c.output_tokens for c in calls)
    price = load_prices().cost("mistral", "mistral-small-latest", tokens_in, tokens_out) or 0.0
    requests = sum(c.attempts for c in calls)
    ratios = [sent / max(quotes, 1) for sent, quotes in figures]
    return {
        "set": label,
        "capabilities": report["capabilities"],
        "with_counterparts": report["with_counterparts"],
        "proposed": proposed,
        "share_ready": round(proposed / max(report["with_counterparts"], 1), 3),
        "dropped": report["dropped"],
        "declined": report["declined"],
        "calls": len(calls),
        "requests": requests,
        "rejections": dict(sorted(causes.items())),
        "tokens_in_per_line": round(tokens_in / max(proposed, 1)),
        "tokens_out_per_line": round(tokens_out / max(proposed, 1)),
        "usd_per_line_mistral_small": round(price / max(proposed, 1), 7),
        "prompt_tokens_median": statistics.median(s for s, _ in figures) if figures else 0,
        "evidence_tokens_median": statistics.median(q for _, q in figures) if figures else 0,
        "prompt_over_evidence_median": round(statistics.median(ratios), 2) if ratios else 0,
        "rerun_calls": again["calls"] + again["cache_hits"],
        "cpu_s": round(cpu, 2),
    }


def demo(home: Path) -> dict[str, Any]:
    os.environ["DECOMPOSER_HOME"] = str(home)
    cli("tool", "add", "Mistral API", "--type", "API", "--vendor", "Mistral AI", "--exist-ok")
    cli("tool", "add", "Llama 4", "--type", "Model", "--vendor", "Meta", "--exist-ok")
    for slug in ("mistral-api", "llama-4"):
        cli("ingest", slug, str(FIXTURES / "docs" / slug))
        cli("extract", slug, "--replay", str(FIXTURES / "recordings"))
    cli("tool", "import", str(FIXTURES / "catalogue.toml"))
    return measure("demo", ["--replay", str(FIXTURES / "recordings" / "contrast")])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def corpus(home: Path, hostile_rate: float) -> dict[str, Any]:
    os.environ["DECOMPOSER_HOME"] = str(home)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(FAKE_PROVIDER),
            "--port",
            str(port),
            "--latency-ms",
            "5",
            "--latency-p99-ms",
            "20",
            "--hostile-rate",
            str(hostile_rate),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(base + "/stats", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        os.environ["DECOMPOSER_COMPATIBLE_API_KEY"] = "fake"
        provider = ["--provider", "openai-compatible", "--model", "fake"]
        provider += ["--base-url", base + "/v1"]
        for tool in json.loads((CORPUS / "tools.json").read_text("utf-8")):
            cli("tool", "add", tool["name"], "--type", tool["type"], "--vendor", tool["vendor"])
            cli("ingest", tool["slug"], str(CORPUS / tool["slug"]))
            cli("extract", tool["slug"], *provider)
        return measure("corpus", provider)
    finally:
        server.terminate()
        server.wait(10)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostile-rate", type=float, default=0.3)
    args = parser.parse_args()
    print(describe())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(demo(Path(tmp) / "demo"))
        rows.append(corpus(Path(tmp) / "corpus", args.hostile_rate))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main_()
