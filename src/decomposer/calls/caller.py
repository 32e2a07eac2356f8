"""The generic model caller: every inline model call, whatever its task, goes through it.

``ModelCaller.call`` owns the cache look-up, validation re-asks (Instructor), usage counting,
cost and the call-log row, so every call — cache hits and failures included — becomes one
``llm_calls`` row. The row is written *before* the first request goes out (outcome
``pending``, its ``attempts`` raised before each further request) and completed with the
answer, so a killed process never leaves billed requests unlogged. Transport retries (429,
5xx, timeouts) happen per HTTP request underneath Instructor, in ``providers.transport``, so a
failed re-ask never replays the answers before it; every raw answer is journalled
(``calls.answers``) until the call has a verdict. Rate limiting happens further down, in the
injected HTTP client's transport.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

import httpx
from pydantic import ValidationError

from decomposer.calls import answers
from decomposer.calls.calllog import PENDING, CallLog, call_row, request_hash
from decomposer.calls.retry import RetryPolicy, hint_for
from decomposer.calls.task import Context, T, Task
from decomposer.core.clock import Clock, Sleep, utcnow
from decomposer.core.errors import ProviderError
from decomposer.providers.base import ProviderConfig, classify, endpoint_of, make_client
from decomposer.providers.pricing import PriceTable
from decomposer.providers.transport import RetryingTransport, Tally, tally
from decomposer.store import Store
from decomposer.store.models import LLMCall

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
    rejections: list[str] = field(default_factory=list)
    """The validation causes of every answer that was re-asked or refused."""
    call_id: int | None = None
    """The call-log row this result was logged as."""


@dataclass
class _Usage:
    """Tokens of every answer Instructor received, and the requests the transport sent."""

    counts: Tally = field(default_factory=Tally)
    input_tokens: int = 0
    output_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)
    rejections: list[str] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return self.counts.requests

    @property
    def billed(self) -> tuple[int, int]:
        """Tokens paid for by this call: answers replayed from the journal were paid before."""
        return (
            max(0, self.input_tokens - self.counts.replayed_input_tokens),
            max(0, self.output_tokens - self.counts.replayed_output_tokens),
        )

    def on_response(self, response: Any, *_args: Any, **_kwargs: Any) -> None:
        usage = getattr(response, "usage", None)
        self.input_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        self.output_tokens += int(getattr(usage, "completion_tokens", 0) or 0)

    def on_parse_error(self, error: Any, *_args: Any, **_kwargs: Any) -> None:
        """An answer Instructor will re-ask (or give up) on: its causes, for the call log."""
        self.rejections.extend(rejection_causes(error))

    @property
    def latency_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


class _Malformed(Exception):
    """The provider answered 200 but without the structure the mode requires."""


class _Truncated(Exception):
    """The answer hit the output-token limit (after raising it, when that is allowed)."""


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
    refresh: bool = False
    """Ask the model again: skip the cache and the journal (their entries are replaced)."""

    _client: AsyncInstructor | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> AsyncInstructor:
        """One Instructor client per caller, on a client of its own stacked over the injected
        one: journal, then per-request retries, then whatever the injected client does (rate
        limiting, replay). One retrying transport per caller, so a 429 slows all its calls."""
        if self._client is None:
            retrying = RetryingTransport(
                answers.ClientTransport(self.http),
                self.policy.backoff,
                sleep=self.sleep,
                clock=self.clock,
            )
            journal = answers.JournalTransport(
                retrying, self.store, self.clock, replay=not self.refresh
            )
            http = httpx.AsyncClient(transport=journal, timeout=self.cfg.timeout_s)
            self._client = make_client(self.cfg, self.key, http)
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
        cached = None if self.refresh else await asyncio.to_thread(self.log.cached, digest)
        if cached is not None:
            hit = CallResult(self.task.parse_cached(cached), True, cache_hit=True)
            hit.call_id = await asyncio.to_thread(
                self.log.add, self._row(digest, run_id, chunk_id, hit, "cache_hit")
            )
            return hit
        pending = self._row(digest, run_id, chunk_id, self._result(None, False, _Usage()), PENDING)
        row_id = await asyncio.to_thread(self.log.add, pending)

        async def sending(requests: int) -> None:
            await asyncio.to_thread(self.log.sending, row_id, requests)

        with tally(on_send=sending) as counts:
            usage = _Usage(counts)
            try:
                value, validated = await self._answer(context, usage)
            except ProviderError as exc:
                failed = self._result(None, False, usage)
                row = self._row(digest, run_id, chunk_id, failed, "error", error=exc.message)
                await asyncio.to_thread(self.log.complete, row_id, row)
                raise
        result = self._result(value, validated, usage)
        row = self._row(digest, run_id, chunk_id, result, "ok" if validated else "ungrounded")
        cache = (digest, value.model_dump_json())
        await asyncio.to_thread(self.log.complete, row_id, row, cache, validated=validated)
        await asyncio.to_thread(answers.forget, self.store, counts.answers)
        result.call_id = row_id
        return result

    def _result(self, value: Any, validated: bool, usage: _Usage) -> CallResult[Any]:
        tokens_in, tokens_out = usage.billed
        return CallResult(
            value,
            validated,
            cache_hit=False,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=self.prices.cost(
                self.cfg.provider, self.cfg.model, tokens_in, tokens_out, self.cfg.base_url
            ),
            attempts=usage.attempts,
            latency_ms=usage.latency_ms,
            rejections=list(usage.rejections),
        )

    async def _answer(self, context: Context, usage: _Usage) -> tuple[T, bool]:
        """Instructor's answer; a structural failure (truncated, malformed) is final and drops
        the journal, a transport failure keeps it so a resumed call replays what was paid."""
        try:
            return await self._within_token_budget(context, usage)
        except _Truncated as exc:
            await asyncio.to_thread(answers.forget, self.store, usage.counts.answers)
            grow = "" if self.policy.grow_max_tokens else "pass --grow-max-tokens, or "
            raise ProviderError(
                f"the model's answer was cut off at {exc.args[0]} output tokens",
                hint=f"{grow}use smaller chunks (--chunk-tokens) or a larger --max-tokens",
            ) from None
        except _Malformed as exc:
            await asyncio.to_thread(answers.forget, self.store, usage.counts.answers)
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

    async def _within_token_budget(self, context: Context, usage: _Usage) -> tuple[T, bool]:
        """The user's ``max_tokens`` is respected; only with ``grow_max_tokens`` is a cut-off
        answer asked again with double the budget, up to the policy's cap."""
        from instructor.core import IncompleteOutputException

        max_tokens = self.cfg.max_tokens
        while True:
            try:
                return await self._once(context, usage, max_tokens)
            except IncompleteOutputException:
                if not self.policy.grow_max_tokens or max_tokens >= self.policy.max_tokens_cap:
                    raise _Truncated(max_tokens) from None
                max_tokens = min(max_tokens * 2, self.policy.max_tokens_cap)

    async def _once(self, context: Context, usage: _Usage, max_tokens: int) -> tuple[T, bool]:
        from instructor.core import Hooks, IncompleteOutputException, InstructorRetryException

        hooks = Hooks()
        hooks.on("completion:response", usage.on_response)
        hooks.on("parse:error", usage.on_parse_error)
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

    def _row(
        self,
        digest: str,
        run_id: int | None,
        chunk_id: str | None,
        result: CallResult[Any],
        outcome: str,
        *,
        error: str | None = None,
    ) -> LLMCall:
        return call_row(
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
            rejections=result.rejections or None,
        )


def rejection_causes(error: Any) -> list[str]:
    """The causes of one failed validation: a validator's ``ctx["causes"]`` when it names
    them (the contrast checker does), else pydantic's error type; ``invalid_json`` for JSON."""
    if isinstance(error, json.JSONDecodeError):
        return ["invalid_json"]
    if not isinstance(error, ValidationError):
        return [type(error).__name__]
    causes: list[str] = []
    for item in error.errors():
        named = (item.get("ctx") or {}).get("causes")
        if isinstance(named, list | tuple) and named:
            causes.extend(str(c) for c in named)
        else:
            causes.append(str(item.get("type", "invalid")))
    return causes


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
