"""Retry rules shared by every billed call: which failures are retried, how long to wait, when
to stop, whether a cut-off answer may be asked again with a larger budget, and the hint an
exhausted call's error carries. Chat calls retry per HTTP request (``policy.backoff`` drives
``providers.transport``); embedding requests, one request per call, retry with tenacity."""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import RetryCallState, wait_exponential_jitter
from tenacity.stop import stop_base

from decomposer.providers.base import classify
from decomposer.providers.transport import Backoff


@dataclass(frozen=True)
class RetryPolicy:
    """Transport retries (per request) and validation re-asks (Instructor) are bounded
    separately; ``max_tokens`` is the user's unless ``grow_max_tokens`` allows doubling it."""

    attempts: int = 6
    deadline_s: float = 300.0
    initial_wait_s: float = 1.0
    max_wait_s: float = 60.0
    reasks: int = 2
    max_tokens_cap: int = 16384
    grow_max_tokens: bool = False

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.attempts, self.deadline_s, self.initial_wait_s, self.max_wait_s)

    def wait(self, state: RetryCallState) -> float:
        """The provider's Retry-After when it gave one, else exponential backoff with jitter."""
        exc = state.outcome.exception() if state.outcome else None
        failure = classify(exc) if exc else None
        if failure is not None and failure.retry_after is not None:
            return min(failure.retry_after, self.max_wait_s)
        backoff = wait_exponential_jitter(initial=self.initial_wait_s, max=self.max_wait_s)
        return float(backoff(state))


@dataclass
class AttemptsBesidesThrottling(stop_base):
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


def transient(exc: BaseException) -> bool:
    failure = classify(exc)
    return failure is not None and failure.transient


def hint_for(status: int | None, model: str) -> str:
    if status in (401, 403):
        return "check the API key for this provider"
    if status == 404:
        return f"check the model name {model!r} and the base URL"
    if status == 429:
        return "rate limited: lower --concurrency or try again later"
    return "the provider may be down; re-run later — finished calls are cached and not re-billed"
