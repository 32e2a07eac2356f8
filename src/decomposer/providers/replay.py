"""An httpx transport that answers chat-completion requests from recorded responses.

The offline demo and tests use it in place of the network, so the real SDK and Instructor code
paths run unchanged. A recording file holds ``interactions``: each has a ``match`` string found
in the request's messages and the ``responses`` to return in order (the last one repeats).
A request that packs several recorded documents gets their answers combined.
Requests in tools mode get the recorded JSON back as a tool call, as a provider would send it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from decomposer.core.errors import InputError


@dataclass
class Interaction:
    match: str
    responses: list[dict[str, Any]]
    served: int = 0

    def next(self) -> dict[str, Any]:
        body = self.responses[min(self.served, len(self.responses) - 1)]
        self.served += 1
        return body


@dataclass
class ReplayTransport(httpx.AsyncBaseTransport):
    interactions: list[Interaction]
    requests: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_path(cls, path: Path) -> ReplayTransport:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if not files or not all(f.is_file() for f in files):
            raise InputError(f"no recordings found at {path}")
        interactions: list[Interaction] = []
        for file in files:
            try:
                raw = json.loads(file.read_text("utf-8"))
                interactions.extend(
                    Interaction(i["match"], list(i["responses"])) for i in raw["interactions"]
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"invalid recording file {file}: {exc}") from None
        return cls(interactions)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = json.loads(request.content or b"{}")
        self.requests.append(body)
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        hits = [i.next() for i in self.interactions if i.match in text]
        if hits:
            return httpx.Response(200, json=_shape(_combine(hits), body))
        return httpx.Response(
            501,
            json={
                "object": "error",
                "type": "replay_miss",
                "message": "no recorded response matches this request",
            },
        )


def _combine(responses: list[dict[str, Any]]) -> dict[str, Any]:
    """One answer for a request that packs several recorded documents: their capabilities in
    order, the first value of each profile field, and the usage summed."""
    if len(responses) == 1:
        return responses[0]
    payloads = [json.loads(r["choices"][0]["message"]["content"]) for r in responses]
    profile: dict[str, Any] = {}
    for payload in payloads:
        for key, value in payload["profile"].items():
            if profile.get(key) is None:
                profile[key] = value
    combined = copy.deepcopy(responses[0])
    combined["choices"][0]["message"]["content"] = json.dumps(
        {"capabilities": [c for p in payloads for c in p["capabilities"]], "profile": profile}
    )
    combined["usage"] = {
        key: sum(int(r["usage"][key]) for r in responses)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    return combined


def _shape(recorded: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Return the recorded JSON the way the request's mode expects it."""
    response = copy.deepcopy(recorded)
    response["model"] = request.get("model", response.get("model"))
    tools = request.get("tools")
    if not tools:
        return response
    name = tools[0]["function"]["name"]
    for i, choice in enumerate(response.get("choices", [])):
        message = choice["message"]
        message["tool_calls"] = [
            {
                "id": f"replay{i}",
                "type": "function",
                "index": 0,
                "function": {"name": name, "arguments": message.get("content") or "{}"},
            }
        ]
        message["content"] = ""
        choice["finish_reason"] = "tool_calls"
    return response
