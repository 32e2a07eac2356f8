"""The answer journal: every raw provider answer, kept under the hash of the HTTP request that
bought it until its logical call reaches a verdict, so a call that stops part-way (a final
transport failure during a re-ask, a killed process) replays its paid answers when resumed.

Requests are deterministic for a given answer history (temperature, prompt, schema and the
previous answers are all in the body), so a resumed call sends byte-identical requests up to
the point where it stopped and gets each from the journal instead of the provider. Once the
call has a verdict (an answer, validated or not, or a structural failure) its entries are
dropped: the final answer lives in ``llm_cache``, and a re-run of an unvalidated answer must
ask the model again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import delete

from decomposer.core.clock import Clock, utcnow
from decomposer.providers.transport import current_tally, is_completion
from decomposer.store import Store
from decomposer.store.models import RawAnswer


def body_hash(request: httpx.Request) -> str:
    """The endpoint and exact body of a request: equal hashes would buy the same answer."""
    digest = hashlib.sha256(str(request.url).encode())
    digest.update(b"\0")
    digest.update(request.content)
    return digest.hexdigest()


@dataclass
class ClientTransport(httpx.AsyncBaseTransport):
    """Sends through an injected client, so its own transport (rate limiter, replay, respx)
    stays underneath whatever the caller stacks on top."""

    client: httpx.AsyncClient

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.client.send(request)


@dataclass
class JournalTransport(httpx.AsyncBaseTransport):
    """Replays a journalled answer instead of buying it again; journals every new 200 answer."""

    inner: httpx.AsyncBaseTransport
    store: Store
    clock: Clock = utcnow
    replay: bool = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not is_completion(request):
            return await self.inner.handle_async_request(request)
        digest, counts = body_hash(request), current_tally()
        saved = await asyncio.to_thread(self._load, digest) if self.replay else None
        if saved is not None:
            counts.replayed += 1
            counts.answers.append(digest)
            tokens_in, tokens_out = _usage(saved)
            counts.replayed_input_tokens += tokens_in
            counts.replayed_output_tokens += tokens_out
            return httpx.Response(
                200, content=saved, headers={"content-type": "application/json"}, request=request
            )
        response = await self.inner.handle_async_request(request)
        if response.status_code == 200:
            body = await response.aread()
            await asyncio.to_thread(self._save, digest, body.decode("utf-8", "replace"))
            counts.answers.append(digest)
        return response

    def _load(self, digest: str) -> bytes | None:
        with self.store.transaction() as session:
            row = session.get(RawAnswer, digest)
            return row.payload.encode() if row is not None else None

    def _save(self, digest: str, payload: str) -> None:
        with self.store.transaction() as session:
            session.merge(RawAnswer(body_hash=digest, payload=payload, created_at=self.clock()))


def forget(store: Store, digests: Sequence[str]) -> None:
    """Drop a finished call's journal entries."""
    if not digests:
        return
    with store.transaction() as session:
        session.execute(delete(RawAnswer).where(RawAnswer.body_hash.in_(list(set(digests)))))


def _usage(body: bytes) -> tuple[int, int]:
    try:
        usage = json.loads(body).get("usage") or {}
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return 0, 0
