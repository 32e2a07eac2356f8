"""Embedding requests on the same call path as model calls: rate limit, retries, usage, cost
and one call-log row (task ``embed``) per request.

Embedders are synchronous (the matching code is), so this is the synchronous twin of the
model caller's request loop, sharing its retry rules (``calls.retry``), its price table and its
call-row constructor; the limiter shares the provider key's budget with chat calls.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tenacity import Retrying, retry_if_exception, stop_after_delay

from decomposer.calls.calllog import EMBED, CallLog, call_row
from decomposer.calls.retry import AttemptsBesidesThrottling, RetryPolicy, transient
from decomposer.core.errors import ProviderError
from decomposer.core.tokens import estimate_tokens
from decomposer.providers.base import classify
from decomposer.providers.pricing import PriceTable
from decomposer.providers.ratelimit import SyncRateLimiter
from decomposer.providers.spec import EmbedFn, EmbedReply

EMBED_MODE = "embed"
NO_PROMPT = "-"


def embed_request_hash(model: str, texts: Sequence[str]) -> str:
    """What the request asked for: the model and the texts (by digest), in order."""
    digests = "\0".join(hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts)
    return hashlib.sha256(f"{model}\0{digests}".encode()).hexdigest()


@dataclass
class EmbeddingCaller:
    """Sends one provider's embedding requests; ``log`` is ``None`` only without a store."""

    provider: str
    model: str
    embed: EmbedFn
    prices: PriceTable
    log: CallLog | None = None
    limiter: SyncRateLimiter | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    base_url: str | None = None
    """The server, so a local openai-compatible one is priced $0 and a remote one unknown."""

    def __call__(self, texts: list[str]) -> list[list[float]]:
        attempts = 0
        started = time.perf_counter()

        def once() -> EmbedReply:
            nonlocal attempts
            attempts += 1
            if self.limiter is not None:
                self.limiter.acquire(sum(estimate_tokens(t) for t in texts))
            try:
                return self.embed(self.model, texts)
            except Exception as exc:
                failure = classify(exc)
                if self.limiter is not None and failure is not None and failure.status == 429:
                    self.limiter.throttle(failure.retry_after)
                raise

        retrying = Retrying(
            stop=AttemptsBesidesThrottling(self.policy.attempts)
            | stop_after_delay(self.policy.deadline_s),
            wait=self.policy.wait,
            retry=retry_if_exception(transient),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            reply = retrying(once)
        except Exception as exc:
            failure = classify(exc)
            what = failure.describe() if failure else type(exc).__name__
            error = ProviderError(
                f"{self.provider} embeddings failed ({what})",
                hint="check the API key, the model name and the base URL",
            )
            self._log(texts, "error", attempts, started, 0, error.message)
            raise error from exc
        self._log(texts, "ok", attempts, started, reply.input_tokens, None)
        return reply.vectors

    def _log(
        self,
        texts: list[str],
        outcome: str,
        attempts: int,
        started: float,
        tokens: int,
        error: str | None,
    ) -> None:
        if self.log is None:
            return
        self.log.add(
            call_row(
                run_id=None,
                chunk_id=None,
                task=EMBED,
                provider=self.provider,
                model=self.model,
                mode=EMBED_MODE,
                prompt_version=NO_PROMPT,
                request_hash=embed_request_hash(self.model, texts),
                outcome=outcome,
                now=self.log.clock(),
                input_tokens=tokens,
                cost_usd=self.prices.cost(self.provider, self.model, tokens, 0, self.base_url),
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                attempts=attempts,
                error=error,
            )
        )
