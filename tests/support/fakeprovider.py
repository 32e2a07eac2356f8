"""A loopback fake of a chat-completions provider, for benchmarks and multi-process tests.

It answers Mistral- and OpenAI-style requests (``json_schema`` or ``tools`` mode) with a valid,
grounded extraction: one capability per ``<document>`` in the prompt, quoting that document's
first sentence. A contrast request (``prompts/contrast``) gets a line that quotes one quote of
each tool and cites both; with ``--hostile-rate R`` a seeded fraction R of first answers carries
one of the faults the checker refuses (chosen by the request's hash), and the re-ask gets the
clean line. Latency follows a log-normal distribution; requests/second and tokens/minute
limits answer 429 with ``Retry-After`` like a real provider. ``GET /stats`` reports what it saw.

    python tests/support/fakeprovider.py --port 8765 --rps 20 --tpm 400000 --latency-ms 150
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from decomposer.core.tokens import estimate_tokens

_DOCUMENT = re.compile(r"<document[^>]*>\n(.*?)\n</document>", re.S)
_SENTENCE = re.compile(r"[^\n.!?]{20,200}[.!?]?")


@dataclass
class FakeConfig:
    rps: float | None = None
    tpm: int | None = None
    latency_ms: float = 100.0
    latency_p99_ms: float = 400.0
    seed: int = 7
    hostile_rate: float = 0.0
    jitter_ms: float | None = None
    """When set, latency is uniform in ``latency_ms ± jitter_ms`` instead of log-normal."""


@dataclass
class FakeState:
    config: FakeConfig
    rng: random.Random
    started: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    requests: int = 0
    ok: int = 0
    throttled: int = 0
    accepted_at: list[float] = field(default_factory=list)
    faults: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0

    def admit(self, now: float, cost: int) -> float | None:
        """``None`` when the request fits the limits, else seconds until it would."""
        while self.started and self.started[0] <= now - 1.0:
            self.started.popleft()
        while self.tokens and self.tokens[0][0] <= now - 60.0:
            self.tokens.popleft()
        cfg = self.config
        if cfg.rps is not None and len(self.started) >= cfg.rps:
            return max(0.001, self.started[0] + 1.0 - now)
        used = sum(n for _, n in self.tokens)
        if cfg.tpm is not None and self.tokens and used + cost > cfg.tpm:
            return max(0.001, self.tokens[0][0] + 60.0 - now)
        self.started.append(now)
        self.tokens.append((now, cost))
        self.accepted_at.append(now)
        return None

    def latency(self) -> float:
        """Log-normal with the configured median and 99th percentile (or uniform within the
        jitter), in seconds."""
        if self.config.jitter_ms is not None:
            low = max(0.0, self.config.latency_ms - self.config.jitter_ms)
            return self.rng.uniform(low, self.config.latency_ms + self.config.jitter_ms) / 1000
        median = self.config.latency_ms / 1000
        p99 = max(self.config.latency_p99_ms / 1000, median)
        sigma = math.log(p99 / median) / 2.326 if p99 > median else 0.0
        return median * math.exp(self.rng.gauss(0.0, sigma)) if sigma else median


def create_app(config: FakeConfig | None = None) -> FastAPI:
    state = FakeState(config or FakeConfig(), random.Random((config or FakeConfig()).seed))
    app = FastAPI(title="decomposer fake provider")

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        state.requests += 1
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            return await answer(body)
        finally:
            state.in_flight -= 1

    async def answer(body: dict[str, Any]) -> JSONResponse:
        prompt_tokens = estimate_tokens(json.dumps(body.get("messages", [])))
        wait = state.admit(time.monotonic(), prompt_tokens + 200)
        if wait is not None:
            state.throttled += 1
            return JSONResponse(
                {"object": "error", "message": "rate limit exceeded", "type": "rate_limited"},
                status_code=429,
                headers={
                    "Retry-After": str(math.ceil(wait)),
                    "retry-after-ms": str(int(wait * 1000) + 1),
                },
            )
        await asyncio.sleep(state.latency())
        state.ok += 1
        if _CONTRAST.search(_user_text(body)):
            return JSONResponse(contrast_for(body, prompt_tokens, state))
        return JSONResponse(completion_for(body, prompt_tokens))

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {
            "requests": state.requests,
            "ok": state.ok,
            "throttled": state.throttled,
            "accepted_at": state.accepted_at,
            "peak_in_flight": state.peak_in_flight,
        }

    return app


_CONTRAST = re.compile(r"^Contrast capability: ", re.M)
_CAPABILITY = re.compile(r'<capability tool="([^"]*)"[^>]*>\n(.*?)</capability>', re.S)
_QUOTE = re.compile(r'<quote id="(Q\d+)">(.*?)</quote>', re.S)
FAULTS = (
    "invented_number",
    "unknown_tool",
    "marketing",
    "unsupported_comparative",
    "unknown_citation",
    "one_sided",
)


def _user_text(body: dict[str, Any]) -> str:
    return "\n".join(
        str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"
    )


def contrast_for(body: dict[str, Any], prompt_tokens: int, state: FakeState) -> dict[str, Any]:
    """A line quoting one quote per tool (the first capability of each), citing both."""
    messages = body.get("messages", [])
    first_try = not any(m.get("role") == "assistant" for m in messages)
    digest = hashlib.sha256(_user_text(body).encode()).digest()
    picked: dict[str, tuple[str, str]] = {}
    for tool, inner in _CAPABILITY.findall(_user_text(body)):
        quotes = [(qid, text) for qid, text in _QUOTE.findall(inner) if '"' not in text]
        if quotes and tool not in picked:
            picked[tool] = quotes[0]
    parts = [f'{tool} documents "{text}"' for tool, (_, text) in picked.items()]
    line = "; ".join(parts[:2]) + "." if len(parts) >= 2 else None
    cites = [qid for qid, _ in list(picked.values())[:2]] if line else []
    if line and first_try and digest[0] / 256 < state.config.hostile_rate:
        fault = FAULTS[digest[1] % len(FAULTS)]
        state.faults += 1
        tools = list(picked)
        line, cites = _hostile(fault, line, cites, tools)
    payload = json.dumps({"vs_alternatives": line, "citations": cites})
    return _wrap(body, payload, prompt_tokens)


def _hostile(fault: str, line: str, cites: list[str], tools: list[str]) -> tuple[str, list[str]]:
    if fault == "invented_number":
        return line[:-1] + ", with 99 percent uptime.", cites
    if fault == "unknown_tool":
        return line[:-1] + ", like OpenAI.", cites
    if fault == "marketing":
        return "The best option: " + line, cites
    if fault == "unsupported_comparative":
        return f"{tools[0]} is cheaper than {tools[1]}.", cites
    if fault == "unknown_citation":
        return line, [*cites, "Q999"]
    return line, cites[:1]


def completion_for(body: dict[str, Any], prompt_tokens: int) -> dict[str, Any]:
    """A grounded answer: per document in the prompt, one capability quoting it."""
    text = "\n".join(
        str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"
    )
    if _schema_name(body) == "Verdict":
        return _wrap(body, _verdict(_DOCUMENT.findall(text)), prompt_tokens)
    capabilities = []
    for index, document in enumerate(_DOCUMENT.findall(text)):
        sentence = _SENTENCE.search(document)
        if sentence is None:
            continue
        quote = sentence.group(0).strip()
        capabilities.append(
            {
                "name": f"Capability {index + 1}: {quote[:40]}",
                "category": "other",
                "description": quote,
                "unique": "Not stated in the docs.",
                "vs_alternatives": "Not stated in the docs.",
                "evidence": [quote],
            }
        )
    payload = json.dumps(
        {
            "capabilities": capabilities,
            "profile": {
                "type": None,
                "pricing_model": None,
                "starting_price": None,
                "free_tier": None,
            },
        }
    )
    return _wrap(body, payload, prompt_tokens)


def _schema_name(body: dict[str, Any]) -> str:
    """The answer model a request asks for (``Extraction``, ``Verdict``)."""
    if body.get("tools"):
        return str(body["tools"][0]["function"]["name"])
    schema = (body.get("response_format") or {}).get("json_schema") or {}
    return str(schema.get("name", ""))


def _verdict(documents: list[str]) -> str:
    """The judge's answer: supported, quoting the first document's first sentence."""
    sentence = _SENTENCE.search(documents[0]) if documents else None
    if sentence is None:
        return json.dumps({"supported": False, "quote": "", "reason": "Nothing to quote."})
    quote = sentence.group(0).strip()
    return json.dumps({"supported": True, "quote": quote, "reason": "The page states it."})


def _wrap(body: dict[str, Any], payload: str, prompt_tokens: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": payload}
    finish = "stop"
    if body.get("tools"):
        name = body["tools"][0]["function"]["name"]
        message = {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "fake1",
                    "type": "function",
                    "index": 0,
                    "function": {"name": name, "arguments": payload},
                }
            ],
        }
        finish = "tool_calls"
    completion_tokens = estimate_tokens(payload)
    return {
        "id": "fake",
        "object": "chat.completion",
        "model": body.get("model", "fake"),
        "created": 1765000000,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rps", type=float)
    parser.add_argument("--tpm", type=int)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--latency-p99-ms", type=float, default=400.0)
    parser.add_argument("--hostile-rate", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, help="uniform latency ± this, not log-normal")
    args = parser.parse_args()
    config = FakeConfig(
        args.rps,
        args.tpm,
        args.latency_ms,
        args.latency_p99_ms,
        hostile_rate=args.hostile_rate,
        jitter_ms=args.jitter_ms,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
