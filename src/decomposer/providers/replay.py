"""httpx transports that answer chat-completion requests from recordings, and that make them.

The offline demo and tests use it in place of the network, so the real SDK and Instructor code
paths run unchanged. A recording file holds ``interactions``: each has a ``match`` string found
in the request's messages and the ``responses`` to return in order (the last one repeats).
A request that packs several recorded documents gets their answers combined; an interaction
marked ``exact`` (made by ``--record``) answers only the very request it was recorded from.
Requests in tools mode get the recorded JSON back as a tool call, as a provider would send it.
``RecordingTransport`` sends requests on to the real provider and saves each answer in the same
format, matched by the request's first user message (the documents); no headers are written, so
neither keys nor auth headers reach a recording.
"""

from __future__ import annotations

import copy
import json
import os
import re
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
    exact: bool = False
    """Recorded by ``--record``: answers only a request whose documents are exactly ``match``
    (a substring match would answer new material packed with recorded material, silently)."""

    def answers(self, text: str, documents: str) -> bool:
        return documents == self.match if self.exact else self.match in text

    def next(self) -> dict[str, Any]:
        body = self.responses[min(self.served, len(self.responses) - 1)]
        self.served += 1
        return body


DOCUMENT = re.compile(r'<document source="([^"]*)"(?: section="([^"]*)")?')
"""A document as the extraction prompt presents it (prompts/extract/*/user.j2)."""


def documents_in(text: str) -> list[str]:
    """The documents a request carries, as ``source`` or ``source § section``."""
    return [f"{s} § {h}" if h else s for s, h in DOCUMENT.findall(text)]


def _first_user_message(body: dict[str, Any]) -> str:
    """The documents sent, before any re-ask: the same for every attempt at one request."""
    for message in body.get("messages", []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


@dataclass
class ReplayTransport(httpx.AsyncBaseTransport):
    interactions: list[Interaction]
    requests: list[dict[str, Any]] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    """The documents of requests no recording answered, for the one-line error."""

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
                    Interaction(i["match"], list(i["responses"]), exact=bool(i.get("exact")))
                    for i in raw["interactions"]
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"invalid recording file {file}: {exc}") from None
        return cls(interactions)

    def _unrecorded(self, text: str) -> list[str]:
        """The request's documents that no recording mentions (all of them if each one is)."""
        known = "\n".join(i.match for i in self.interactions)
        found = [(m.group(0), documents_in(m.group(0))[0]) for m in DOCUMENT.finditer(text)]
        unknown = [label for marker, label in found if marker not in known]
        return unknown or [label for _, label in found] or ["(no document in the request)"]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = json.loads(request.content or b"{}")
        self.requests.append(body)
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        documents = _first_user_message(body)
        hits = [i.next() for i in self.interactions if i.answers(text, documents)]
        if hits:
            return httpx.Response(200, json=_shape(_combine(hits), body))
        self.misses.extend(self._unrecorded(documents))
        return httpx.Response(
            501,
            json={
                "object": "error",
                "type": "replay_miss",
                "message": "no recorded response matches this request",
            },
        )


class RecordingTransport(httpx.AsyncBaseTransport):
    """Sends each request to ``inner`` (the network) and saves every successful chat completion
    to ``path`` as a recording that ``ReplayTransport`` can answer from later, offline.

    The file is rewritten after each answer (atomically), so an interrupted run keeps what it
    paid for. Re-asks of one request are kept as that interaction's later responses.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, path: Path) -> None:
        self.inner = inner
        self.path = path
        self.interactions: dict[str, list[dict[str, Any]]] = {}
        self._fresh: set[str] = set()
        if path.is_file():
            for i in ReplayTransport.from_path(path).interactions:
                self.interactions[i.match] = i.responses

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if response.status_code != 200 or not request.url.path.endswith("/chat/completions"):
            return response
        content = await response.aread()
        body = json.loads(request.content or b"{}")
        match = _first_user_message(body)
        if match:
            answer = json.loads(content)
            if match not in self._fresh:  # a new recording of this request replaces an old one
                self._fresh.add(match)
                self.interactions[match] = []
            self.interactions[match].append(answer)
            self._save()
        headers = [
            (k, v)
            for k, v in response.headers.items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(200, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _save(self) -> None:
        data = {
            "interactions": [
                {"match": m, "exact": True, "responses": r} for m, r in self.interactions.items()
            ]
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
        os.replace(partial, self.path)


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
