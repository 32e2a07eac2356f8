"""The generic model caller: every inline model call, whatever its task, goes through it.

``ModelCaller.call`` owns the cache look-up, transport retries (tenacity), validation re-asks
(Instructor), usage counting, cost and the call-log row, so every call — cache hits and
failures included — becomes one ``llm_calls`` row with tokens summed over all attempts
(Instructor does not sum them for Mistral, so a per-call hook counts them). Rate limiting
happens below, in the injected HTTP transport. Batch API results are checked and logged by
``calls.results`` and embedding requests by ``calls.embedding``, with the same log and prices.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay

from decomposer.calls.calllog import CallLog, call_row, request_hash
from decomposer.calls.retry import AttemptsBesidesThrottling, RetryPolicy, hint_for, transient
from decomposer.calls.task import Context, T, Task
from decomposer.core.clock import Clock, Sleep, utcnow
from decomposer.core.errors import ProviderError
from decomposer.providers.base import ProviderConfig, classify, endpoint_of, make_client
from decomposer.providers.pricing import PriceTable
from decomposer.store import Store

if TYPE_CHECKING:
    from instructor import AsyncInstructor

__all__ = ["CallResult", "ModelCaller", "RetryPolicy", "payload_text", "request_hash"]


@dataclass
class CallResult(Generic[T]):
    value: T
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
    started: float = field(default_factory=time.perf_counter)

    def on_kwargs(self, *_args: Any, **_kwargs: Any) -> None:
        self.attempts += 1

    def on_response(self, response: Any, *_args: Any, **_kwargs: Any) -> None:
        usage = getattr(response, "usage", None)
        self.input_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        self.output_tokens += int(getattr(usage, "completion_tokens", 0) or 0)

    @property
    def latency_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


class _Malformed(Exception):
    """The provider answered 200 but without the structure the mode requires."""


class _Truncated(Exception):
    """The answer hit the output-token cap even after raising the limit."""


@dataclass
class ModelCaller(Generic[T]):
    """One endpoint and one task: answers ``call(context)`` from the cache or the model."""

    cfg: ProviderConfig
    key: str = field(repr=False)
    task: Task[T]
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

    @property
    def log(self) -> CallLog:
        return CallLog(self.store, self.clock)

    def request_hash(self, context: Context) -> str:
        return request_hash(self.cfg, self.task, context)

    async def call(
        self, context: Context, *, run_id: int | None, chunk_id: str | None
    ) -> CallResult[T]:
        """The task's answer for ``context``, logged; raises ``ProviderError`` when it fails."""
        digest = self.request_hash(context)
        cached = await asyncio.to_thread(self.log.cached, digest)
        if cached is not None:
            hit = CallResult(self.task.parse_cached(cached), True, cache_hit=True)
            await self._log(digest, run_id, chunk_id, hit, "cache_hit")
            return hit
        usage = _Usage()
        try:
            value, validated = await self._with_transport_retries(context, usage)
        except ProviderError as exc:
            failed = self._result(None, False, usage)
            await self._log(digest, run_id, chunk_id, failed, "error", error=exc.message)
            raise
        result = self._result(value, validated, usage)
        outcome = "ok" if validated else "ungrounded"
        await self._log(digest, run_id, chunk_id, result, outcome, payload=value)
        return result

    def _result(self, value: Any, validated: bool, usage: _Usage) -> CallResult[Any]:
        return CallResult(
            value,
            validated,
            cache_hit=False,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=self.prices.cost(
                self.cfg.provider,
                self.cfg.model,
                usage.input_tokens,
                usage.output_tokens,
                self.cfg.base_url,
            ),
            attempts=usage.attempts,
            latency_ms=usage.latency_ms,
        )

    async def _with_transport_retries(self, context: Context, usage: _Usage) -> tuple[T, bool]:
        from instructor.core import IncompleteOutputException

        max_tokens = self.cfg.max_tokens
        retrying = AsyncRetrying(
            stop=AttemptsBesidesThrottling(self.policy.attempts)
            | stop_after_delay(self.policy.deadline_s),
            wait=self.policy.wait,
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
            raise ProviderError(
                f"{self.cfg.provider} request to {endpoint_of(exc)} failed after "
                f"{usage.attempts} attempt(s): {failure.describe()}",
                hint=hint_for(failure.status, self.cfg.model),
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _once(self, context: Context, usage: _Usage, max_tokens: int) -> tuple[T, bool]:
        from instructor.core import Hooks, IncompleteOutputException, InstructorRetryException

        hooks = Hooks()
        hooks.on("completion:kwargs", usage.on_kwargs)
        hooks.on("completion:response", usage.on_response)
        try:
            value = await self.client.create(
                hooks=hooks,
                response_model=self.task.response_model,
                messages=self.task.prompt.messages(),  # type: ignore[arg-type]
                context=self.task.validation_context(context),
                model=self.cfg.model,
                temperature=self.cfg.temperature,
                max_tokens=max_tokens,
                max_retries=self.policy.reasks,
            )
            return value, True
        except InstructorRetryException as exc:
            if _is_incomplete(exc):
                raise IncompleteOutputException() from exc
            if classify(exc) is not None:
                raise
            if not _validation_failed(exc):
                raise _Malformed(_short(exc)) from exc
            return self._parse_last(exc), False
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise _Malformed(f"{type(exc).__name__}: {exc}") from exc

    def _parse_last(self, exc: Any) -> T:
        """After the re-asks ran out, keep the last answer (flagged, not dropped) if it parses."""
        try:
            return self.task.parse_unchecked(payload_text(exc.last_completion))
        except ValidationError as err:
            raise _Malformed(
                f"invalid output after {exc.n_attempts} attempts: {err.errors()[0]['msg']}"
            ) from None

    async def _log(
        self,
        digest: str,
        run_id: int | None,
        chunk_id: str | None,
        result: CallResult[Any],
        outcome: str,
        *,
        error: str | None = None,
        payload: BaseModel | None = None,
    ) -> None:
        row = call_row(
            run_id=run_id,
            chunk_id=chunk_id,
            task=self.task.name,
            provider=self.cfg.provider,
            model=self.cfg.model,
            mode=self.cfg.mode,
            prompt_version=self.task.prompt_version,
            request_hash=digest,
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
        cache = (digest, payload.model_dump_json()) if payload is not None else None
        await asyncio.to_thread(self.log.add, row, cache)


def _is_retryable(exc: BaseException) -> bool:
    from instructor.core import IncompleteOutputException

    return isinstance(exc, _Malformed | IncompleteOutputException) or transient(exc)


def _validation_failed(exc: Any) -> bool:
    causes = [exc.__cause__, *(a.exception for a in getattr(exc, "failed_attempts", None) or [])]
    return any(isinstance(c, ValidationError | json.JSONDecodeError) for c in causes)


def _is_incomplete(exc: BaseException) -> bool:
    from instructor.core import IncompleteOutputException

    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, IncompleteOutputException):
            return True
        current = current.__cause__ or current.__context__
    return False


def _short(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0][:200] if str(cause) else ''}"


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
