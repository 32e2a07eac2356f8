"""The one place where model calls happen: cache, retries, re-asks, usage, cost and the call log.

Every provider goes through ``ModelCaller.extract`` so every call — cache hits and failures
included — becomes one ``llm_calls`` row with tokens summed over all attempts (Instructor does
not sum them for Mistral, so we count them ourselves in a per-call hook).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from instructor import AsyncInstructor
from instructor.core import Hooks, IncompleteOutputException, InstructorRetryException
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from decomposer.calls.prompts import Prompt
from decomposer.core.clock import Clock, Sleep, utcnow
from decomposer.core.errors import ProviderError
from decomposer.extraction.schema import Extraction, schema_sha256
from decomposer.providers.base import ProviderConfig, classify, make_client
from decomposer.providers.pricing import PriceTable
from decomposer.store import Store
from decomposer.store.models import CachedResponse, LLMCall

log = logging.getLogger("decomposer.calls.caller")


def call_row(
    *,
    run_id: int | None,
    chunk_id: str | None,
    provider: str,
    model: str,
    mode: str,
    prompt_version: str,
    request_hash: str,
    outcome: str,
    now: datetime,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: float | None = 0.0,
    latency_ms: float = 0.0,
    attempts: int = 1,
    cache_hit: bool = False,
    error: str | None = None,
) -> LLMCall:
    """The one place a call-log row is made (and its log line written), for every path:
    inline calls, cache hits, failures and Batch API results alike."""
    log.info(
        "llm call provider=%s model=%s mode=%s chunk=%s outcome=%s attempts=%d "
        "tokens_in=%d tokens_out=%d cost_usd=%s latency_ms=%.1f",
        provider,
        model,
        mode,
        chunk_id,
        outcome,
        attempts,
        input_tokens,
        output_tokens,
        cost_usd,
        latency_ms,
    )
    return LLMCall(
        run_id=run_id,
        chunk_id=chunk_id,
        provider=provider,
        model=model,
        mode=mode,
        prompt_version=prompt_version,
        request_hash=request_hash,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
        attempts=attempts,
        cache_hit=cache_hit,
        outcome=outcome,
        error=error,
        created_at=now,
    )


def request_hash(cfg: ProviderConfig, prompt: Prompt, context: dict[str, Any]) -> str:
    """Everything that can change the answer: endpoint, sampling, prompt, schema, input."""
    material = {
        "provider": cfg.provider,
        "base_url": cfg.base_url,
        "model": cfg.model,
        "mode": cfg.mode,
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
        "prompt": prompt.sha256,
        "schema": schema_sha256(),
        "context": context,
    }
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class RetryPolicy:
    """Transport retries (tenacity) and validation re-asks (Instructor) are bounded separately."""

    attempts: int = 6
    deadline_s: float = 300.0
    initial_wait_s: float = 1.0
    max_wait_s: float = 60.0
    reasks: int = 2
    max_tokens_cap: int = 16384


@dataclass
class CallResult:
    extraction: Extraction
    validated: bool
    cache_hit: bool
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    attempts: int = 0
    latency_ms: float = 0.0


@dataclass
class _Usage:
    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def on_kwargs(self, *_args: Any, **_kwargs: Any) -> None:
        self.attempts += 1

    def on_response(self, response: Any, *_args: Any, **_kwargs: Any) -> None:
        usage = getattr(response, "usage", None)
        self.input_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        self.output_tokens += int(getattr(usage, "completion_tokens", 0) or 0)


class _Malformed(Exception):
    """The provider answered 200 but without the structure the mode requires."""


class _Truncated(Exception):
    """The answer hit the output-token cap even after raising the limit."""


@dataclass
class ModelCaller:
    cfg: ProviderConfig
    key: str = field(repr=False)
    prompt: Prompt
    store: Store
    http: httpx.AsyncClient
    prices: PriceTable
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep
    clock: Clock = utcnow

    _client: AsyncInstructor | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> AsyncInstructor:
        """One Instructor client per caller; per-call hooks keep each call's usage apart."""
        if self._client is None:
            self._client = make_client(self.cfg, self.key, self.http)
        return self._client

    def request_hash(self, context: dict[str, Any]) -> str:
        return request_hash(self.cfg, self.prompt, context)

    async def extract(
        self, context: dict[str, Any], *, run_id: int | None, chunk_id: str | None
    ) -> CallResult:
        request_hash = self.request_hash(context)
        cached = await asyncio.to_thread(self._cached, request_hash)
        if cached is not None:
            result = CallResult(Extraction.model_validate_json(cached), True, cache_hit=True)
            await asyncio.to_thread(
                self._log, request_hash, run_id, chunk_id, result, "cache_hit", None
            )
            return result
        usage = _Usage()
        started = time.perf_counter()
        try:
            extraction, validated = await self._with_transport_retries(context, usage)
        except ProviderError as exc:
            failed = CallResult(Extraction(capabilities=[], profile=_EMPTY_PROFILE), False, False)
            self._fill(failed, usage, started)
            await asyncio.to_thread(
                self._log, request_hash, run_id, chunk_id, failed, "error", exc.message
            )
            raise
        result = CallResult(extraction, validated, cache_hit=False)
        self._fill(result, usage, started)
        outcome = "ok" if validated else "ungrounded"
        await asyncio.to_thread(
            self._record, request_hash, extraction, run_id, chunk_id, result, outcome
        )
        return result

    def _fill(self, result: CallResult, usage: _Usage, started: float) -> None:
        result.attempts = usage.attempts
        result.input_tokens = usage.input_tokens
        result.output_tokens = usage.output_tokens
        result.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        result.cost_usd = self.prices.cost(
            self.cfg.provider, self.cfg.model, usage.input_tokens, usage.output_tokens
        )

    async def _with_transport_retries(
        self, context: dict[str, Any], usage: _Usage
    ) -> tuple[Extraction, bool]:
        max_tokens = self.cfg.max_tokens
        retrying = AsyncRetrying(
            stop=_AttemptsBesidesThrottling(self.policy.attempts)
            | stop_after_delay(self.policy.deadline_s),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        return await self._once(context, usage, max_tokens)
                    except IncompleteOutputException:
                        if max_tokens >= self.policy.max_tokens_cap:
                            raise _Truncated() from None
                        max_tokens = min(max_tokens * 2, self.policy.max_tokens_cap)
                        raise
        except _Truncated:
            raise ProviderError(
                f"the model's answer was cut off at {max_tokens} output tokens",
                hint="use smaller chunks (--chunk-tokens) or a model with a larger output limit",
            ) from None
        except _Malformed as exc:
            raise ProviderError(
                f"{self.cfg.provider} answered without the expected structure ({exc})",
                hint="try --mode json_schema or another model",
            ) from None
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            hint = _hint_for(failure.status, self.cfg)
            raise ProviderError(
                f"{self.cfg.provider} request failed after {usage.attempts} attempt(s): "
                f"{failure.describe()}",
                hint=hint,
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _once(
        self, context: dict[str, Any], usage: _Usage, max_tokens: int
    ) -> tuple[Extraction, bool]:
        hooks = Hooks()
        hooks.on("completion:kwargs", usage.on_kwargs)
        hooks.on("completion:response", usage.on_response)
        try:
            extraction = await self.client.create(
                hooks=hooks,
                response_model=Extraction,
                messages=self.prompt.messages(),  # type: ignore[arg-type]
                context=context,
                model=self.cfg.model,
                temperature=self.cfg.temperature,
                max_tokens=max_tokens,
                max_retries=self.policy.reasks,
            )
            return extraction, True
        except InstructorRetryException as exc:
            if _is_incomplete(exc):
                raise IncompleteOutputException() from exc
            if classify(exc) is not None:
                raise
            if not _validation_failed(exc):
                raise _Malformed(_short(exc)) from exc
            return _parse_last(exc), False
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise _Malformed(f"{type(exc).__name__}: {exc}") from exc

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        failure = classify(exc) if exc else None
        if failure is not None and failure.retry_after is not None:
            return min(failure.retry_after, self.policy.max_wait_s)
        backoff = wait_exponential_jitter(
            initial=self.policy.initial_wait_s, max=self.policy.max_wait_s
        )
        return float(backoff(state))

    def _record(
        self,
        request_hash: str,
        extraction: Extraction,
        run_id: int | None,
        chunk_id: str | None,
        result: CallResult,
        outcome: str,
    ) -> None:
        self._remember(request_hash, extraction)
        self._log(request_hash, run_id, chunk_id, result, outcome, None)

    def _cached(self, request_hash: str) -> str | None:
        with self.store.transaction() as session:
            row = session.get(CachedResponse, request_hash)
            return row.payload if row else None

    def _remember(self, request_hash: str, extraction: Extraction) -> None:
        with self.store.transaction() as session:
            session.merge(
                CachedResponse(
                    request_hash=request_hash,
                    provider=self.cfg.provider,
                    model=self.cfg.model,
                    payload=extraction.model_dump_json(),
                    created_at=self.clock(),
                )
            )

    def _log(
        self,
        request_hash: str,
        run_id: int | None,
        chunk_id: str | None,
        result: CallResult,
        outcome: str,
        error: str | None,
    ) -> None:
        with self.store.transaction() as session:
            session.add(
                call_row(
                    run_id=run_id,
                    chunk_id=chunk_id,
                    provider=self.cfg.provider,
                    model=self.cfg.model,
                    mode=self.cfg.mode,
                    prompt_version=f"{self.prompt.name}/{self.prompt.version}",
                    request_hash=request_hash,
                    outcome=outcome,
                    now=self.clock(),
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                    cost_usd=result.cost_usd,
                    latency_ms=result.latency_ms,
                    attempts=result.attempts,
                    cache_hit=result.cache_hit,
                    error=error,
                )
            )


_EMPTY_PROFILE = Extraction.model_validate(
    {
        "capabilities": [],
        "profile": {"type": None, "pricing_model": None, "starting_price": None, "free_tier": None},
    }
).profile


@dataclass
class _AttemptsBesidesThrottling(stop_base):
    """Stop after ``attempts`` failures, not counting 429s that said when to come back:
    those are the provider pacing us, bounded by the deadline instead."""

    attempts: int
    throttled: int = 0

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        failure = classify(exc) if exc else None
        if failure is not None and failure.status == 429 and failure.retry_after is not None:
            self.throttled += 1
        return state.attempt_number - self.throttled >= self.attempts


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, _Malformed | IncompleteOutputException):
        return True
    failure = classify(exc)
    return failure is not None and failure.transient


def _hint_for(status: int | None, cfg: ProviderConfig) -> str:
    if status in (401, 403):
        return "check the API key for this provider"
    if status == 404:
        return f"check the model name {cfg.model!r} and the base URL"
    if status == 429:
        return "rate limited: lower --concurrency or try again later"
    return "the provider may be down; re-run later — finished calls are cached and not re-billed"


def _validation_failed(exc: InstructorRetryException) -> bool:
    causes = [exc.__cause__, *(a.exception for a in getattr(exc, "failed_attempts", None) or [])]
    return any(isinstance(c, ValidationError | json.JSONDecodeError) for c in causes)


def _is_incomplete(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, IncompleteOutputException):
            return True
        current = current.__cause__ or current.__context__
    return False


def _short(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0][:200] if str(cause) else ''}"


def _parse_last(exc: InstructorRetryException) -> Extraction:
    """After the re-asks ran out, keep the last answer (flagged, not dropped) if it parses."""
    text = payload_text(exc.last_completion)
    try:
        return Extraction.model_validate_json(text)
    except ValidationError as err:
        raise _Malformed(
            f"invalid output after {exc.n_attempts} attempts: {err.errors()[0]['msg']}"
        ) from None


def payload_text(completion: Any) -> str:
    """The structured payload of a chat completion: tool-call arguments or message content."""
    try:
        message = completion.choices[0].message
    except (AttributeError, IndexError, TypeError):
        return ""
    calls = getattr(message, "tool_calls", None) or []
    if calls:
        args = calls[0].function.arguments
        return args if isinstance(args, str) else json.dumps(args)
    content = getattr(message, "content", None)
    return content if isinstance(content, str) else ""
