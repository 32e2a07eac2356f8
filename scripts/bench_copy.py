"""Benchmark `--copy llm`: tokens, cost and re-asks per page, through the real Mistral SDK and
Instructor against the fake provider's copy answerer (``tests/support/fakecopy.py``).

Run: ``.venv/bin/python scripts/bench_copy.py [--pages 200] [--error-rate 0.3]``

Pages are random "A vs B" pairs in which each sub-score is unknown with probability 0.3 and the
free tier and starting price are sometimes missing. The fake writes copy true to the table; with
``--error-rate`` a first answer sometimes carries one false claim (a lead on an unknown score, a
swapped leader, an invented price), which the checker must refuse and the re-ask correct.
Reports per page: calls, HTTP attempts, re-ask rate, template fallbacks, input/output tokens and
cost at mistral-small-latest prices (median and mean), then a second pass over the same pages,
which must be answered from the cache with no request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from decomposer.calls.caller import ModelCaller
from decomposer.calls.prompts import load_prompt
from decomposer.catalog.score import SUBSCORES
from decomposer.core.tokens import estimate_tokens
from decomposer.pages.compare import build_comparison
from decomposer.pages.copy import Copywriter
from decomposer.pages.llm_copy import COPY, PageCopy, copy_task, write_copy
from decomposer.pages.model import Comparison, Options, ToolSide
from decomposer.providers.base import ProviderConfig
from decomposer.providers.pricing import load_prices
from decomposer.store import open_store
from machine import describe

FAKE_COPY = Path(__file__).resolve().parents[1] / "tests" / "support" / "fakecopy.py"


def _fake_copy() -> Any:
    """The test kit's copy answerer, loaded by file path (the wheel holds no test code)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fakecopy", FAKE_COPY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WEIGHTS = {"adoption": 25, "quality": 25, "ecosystem": 10, "match_graph": 25, "freshness": 15}


def side(rng: random.Random, slug: str, name: str) -> ToolSide:
    scores = {n: None if rng.random() < 0.3 else rng.randint(0, 100) for n in SUBSCORES}
    known = {n: v for n, v in scores.items() if v is not None}
    weight = sum(WEIGHTS[n] for n in known)
    rank = round(sum(WEIGHTS[n] * v for n, v in known.items()) / weight) if weight else None
    priced = rng.random() < 0.6
    return ToolSide(
        slug=slug,
        name=name,
        vendor=None,
        homepage=None,
        categories=[],
        profile={},
        type_text="API",
        pricing_text="Paid",
        price_text=f"${rng.choice(['0.10', '2', '15'])} / 1M input tokens" if priced else "—",
        free_tier=rng.choice([True, False, None]),
        rank=rank,
        rank_coverage=weight,
        subscores=scores,
        scores={},
        capabilities_count=rng.randint(3, 40),
        approved_count=0,
        draft_count=0,
        grounded_count=0,
        times_matched=0,
        capabilities=[],
        shown=0,
        more=0,
    )


def pages(n: int, seed: int) -> list[Comparison]:
    rng = random.Random(seed)
    options = Options(as_of=date(2025, 7, 1))
    copy = Copywriter()
    return [
        build_comparison(
            side(rng, f"t{i}a", f"Tool {i}A"), side(rng, f"t{i}b", f"Tool {i}B"), options, copy
        )
        for i in range(n)
    ]


INJECTED: list[str] = []


def handler(error_rate: float, seed: int) -> httpx.MockTransport:
    rng = random.Random(seed)
    fake = _fake_copy()

    def answer(request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = json.loads(request.content)
        messages = body["messages"]
        text = "\n".join(str(m.get("content", "")) for m in messages)
        answer = fake.copy_answer(text, len(messages) <= 2, rng, error_rate)
        if answer.pop("false_claim", None):
            INJECTED.append(answer["verdict"])
        payload = json.dumps(answer)
        usage = {
            "prompt_tokens": estimate_tokens(
                json.dumps(messages) + json.dumps(body.get("response_format"))
            ),
            "completion_tokens": estimate_tokens(payload),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return httpx.Response(
            200,
            json={
                "id": "fake",
                "object": "chat.completion",
                "model": body["model"],
                "created": 1765000000,
                "usage": usage,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": payload},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    return httpx.MockTransport(answer)


async def run(comparisons: list[Comparison], caller: ModelCaller[PageCopy]) -> list[Comparison]:
    return [await write_copy(caller, c) for c in comparisons]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--error-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db")
        transport = handler(args.error_rate, args.seed)
        comparisons = pages(args.pages, args.seed)

        async def both() -> tuple[list[Comparison], list[Comparison]]:
            async with httpx.AsyncClient(transport=transport) as http:
                caller = ModelCaller(
                    cfg=ProviderConfig(
                        "mistral", "mistral-small-latest", "json_schema", max_tokens=1024
                    ),
                    key="bench",
                    task=copy_task(load_prompt(COPY)),
                    store=store,
                    http=http,
                    prices=load_prices(),
                )
                first = await run(comparisons, caller)
                second = await run(comparisons, caller)
                return first, second

        first, second = asyncio.run(both())
        from sqlalchemy import select

        from decomposer.store.models import LLMCall

        with store.transaction() as s:
            rows = list(s.scalars(select(LLMCall).where(LLMCall.task == COPY).order_by(LLMCall.id)))
        store.dispose()
    billed = [r for r in rows if not r.cache_hit]
    hits = [r for r in rows if r.cache_hit]
    fallback = sum(c.copy_info.fallback_note is not None for c in first)

    def stats(values: list[float]) -> str:
        return f"median {statistics.median(values):.6g}, mean {statistics.mean(values):.6g}"

    print(f"pages: {len(first)}, fake first-answer error rate {args.error_rate}")
    print(f"first answers with a planted false claim: {len(INJECTED)}")
    attempts = stats([r.attempts for r in billed])
    print(f"calls per page: {len(billed) / len(first):.2f}; HTTP attempts per page: {attempts}")
    reasked = sum(r.attempts > 1 for r in billed) / len(billed)
    print(f"re-ask rate: {reasked:.3f} of pages; fallback to template: {fallback}")
    print(f"input tokens per page: {stats([r.input_tokens for r in billed])}")
    print(f"output tokens per page: {stats([r.output_tokens for r in billed])}")
    print(f"cost per page USD (mistral-small-latest): {stats([r.cost_usd or 0.0 for r in billed])}")
    requests = sum(r.attempts for r in hits)
    print(f"second pass: {len(hits)} cache hits, {requests} requests, same copy: {first == second}")


if __name__ == "__main__":
    main()
