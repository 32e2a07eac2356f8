"""What a provider module declares: the ``Provider`` record and the types its pieces share.

A provider module (``mistral``, ``openai``, ``compatible``) fills one ``Provider`` with its key
variable, defaults, chat client factory, Batch API client and embedding function; the registry
lists them. Nothing here imports a vendor SDK or Instructor at import time, so choosing a
provider (or printing ``--help``) stays cheap; the factories import their SDK when called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import httpx
from pydantic import SecretStr

from decomposer.core.config import Settings
from decomposer.core.errors import ProviderError

if TYPE_CHECKING:
    from instructor import AsyncInstructor, Mode

K = TypeVar("K")
"""The key a batch line carries back (a job id, a capability id)."""

MODES = ("tools", "json_schema")
DEFAULT_MODE = "json_schema"
TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
CHAT_ENDPOINT: Final = "/v1/chat/completions"


@dataclass(frozen=True)
class ProviderConfig:
    """Everything about the model endpoint that can change an answer (and so the cache key)."""

    provider: str
    model: str
    mode: str
    base_url: str | None = None
    temperature: float = 0.0
    max_tokens: int = 4096
    timeout_s: float = 120.0

    @property
    def instructor_mode(self) -> Mode:
        from instructor import Mode

        return Mode.TOOLS if self.mode == "tools" else Mode.JSON_SCHEMA


@dataclass(frozen=True)
class APIFailure:
    """A provider error reduced to what retrying and reporting need (no bodies, no keys)."""

    kind: str
    status: int | None = None
    retry_after: float | None = None

    @property
    def transient(self) -> bool:
        if self.kind in ("timeout", "connection"):
            return True
        return self.kind == "http" and self.status in TRANSIENT_STATUS

    def describe(self) -> str:
        if self.kind == "http":
            return f"HTTP {self.status}"
        return self.kind


Failure = Callable[[BaseException], APIFailure | None]
"""Recognise one SDK's error (or return ``None``); must not import the SDK to say no."""


class BatchAPIError(ProviderError):
    """A Batch API request failed; ``transient`` says whether trying again may help, and
    ``status``/``retry_after`` carry the HTTP status and the provider's Retry-After."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        transient: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class FileLimits:
    lines: int
    bytes: int

    def split(self, lines: Sequence[tuple[K, str]]) -> list[list[tuple[K, str]]]:
        """Cut ``(key, JSONL line)`` pairs into files within the provider's line and size
        limits, keeping their order."""
        files: list[list[tuple[K, str]]] = []
        current: list[tuple[K, str]] = []
        size = 0
        for item in lines:
            length = len(item[1].encode())
            if current and (len(current) >= self.lines or size + length > self.bytes):
                files.append(current)
                current, size = [], 0
            current.append(item)
            size += length
        if current:
            files.append(current)
        return files


@dataclass(frozen=True)
class Remote:
    """A provider's view of a batch, reduced to what we store."""

    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    errors: str | None = None


class BatchClient(Protocol):
    """One provider's files and batch endpoints, as ``extraction.batch`` drives them."""

    async def create(
        self, content: bytes, name: str, model: str, metadata: dict[str, str]
    ) -> tuple[str, str, str]:
        """Upload ``content`` and start a batch: (batch id, input file id, status)."""
        ...

    async def retrieve(self, batch_id: str) -> Remote: ...

    async def download(self, file_id: str) -> str: ...

    async def cancel(self, batch_id: str) -> Remote:
        """Ask the provider to stop the batch; returns its state right after."""
        ...

    async def delete_file(self, file_id: str) -> None:
        """Delete an uploaded input or a results file (already gone is fine)."""
        ...


@dataclass(frozen=True)
class BatchSpec:
    """A provider's Batch API: client, input-file limits, how a request line looks, and which
    statuses are final (and how each one ended)."""

    client: Callable[[str, httpx.AsyncClient, str | None], BatchClient]
    limits: FileLimits
    line: Callable[[ProviderConfig, str, dict[str, Any]], dict[str, Any]]
    endings: dict[str, str]
    """Final status -> ``completed``, ``failed``, ``expired`` or ``cancelled``."""

    @property
    def terminal(self) -> frozenset[str]:
        return frozenset(self.endings)


@dataclass(frozen=True)
class EmbedReply:
    vectors: list[list[float]]
    input_tokens: int = 0


EmbedFn = Callable[[str, list[str]], EmbedReply]
"""``(model, texts) -> vectors in input order``: one embeddings request."""


@dataclass(frozen=True)
class Provider:
    """Everything vendor-specific about one provider; adding a provider is one of these."""

    name: str
    key_variable: str
    secret: Callable[[Settings], SecretStr | None]
    chat_client: Callable[[ProviderConfig, str, httpx.AsyncClient], AsyncInstructor]
    failure: Failure
    instructor_provider: str
    """Instructor's name for the request format (its ``Provider`` enum value)."""
    default_model: str | None = None
    key_required: bool = True
    needs_base_url: bool = False
    model_in_batch_line: bool = True
    batch: BatchSpec | None = None
    embedder: Callable[[str, httpx.Client, str | None, float], EmbedFn] | None = None
    """``(key, http, base_url, timeout_s) -> EmbedFn``."""
    default_embed_model: str | None = None
    embed_thresholds: tuple[float, float] = (0.55, 0.35)
    """Cosine similarities (align, match) this provider's embeddings must reach: conservative
    starting points from its typical cosine range (unrelated short texts score about 0.6 with
    mistral-embed, 0.1–0.2 with OpenAI's v3 models); overridable on the command line."""
    embed_batch_size: int = 128
    """Texts per embeddings request."""
    modes: tuple[str, ...] = field(default=MODES)

    def request_body(
        self, cfg: ProviderConfig, response_model: type[Any], messages: Sequence[dict[str, str]]
    ) -> dict[str, Any]:
        """The chat request Instructor sends for the first attempt, built by Instructor itself
        (``handle_response_model``) so a Batch line and an inline call cannot drift apart."""
        from instructor.processing import handle_response_model
        from instructor.utils.providers import Provider as InstructorProvider

        _, kwargs = handle_response_model(
            response_model,
            cfg.instructor_mode,
            InstructorProvider(self.instructor_provider),
            messages=list(messages),
            model=cfg.model,
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
        )
        if not self.model_in_batch_line:
            kwargs.pop("model", None)
        return kwargs


def http_failure(err: BaseException) -> APIFailure | None:
    """Failures below any SDK: timeouts and broken connections of the httpx transport."""
    if isinstance(err, httpx.TimeoutException):
        return APIFailure("timeout")
    if isinstance(err, httpx.TransportError):
        return APIFailure("connection")
    return None


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes and contexts, outermost first (Instructor wraps errors)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify_with(failures: Sequence[Failure], exc: BaseException) -> APIFailure | None:
    """The first transport/API failure behind ``exc`` that one of ``failures`` recognises."""
    for err in chain(exc):
        for recognise in (*failures, http_failure):
            found = recognise(err)
            if found is not None:
                return found
    return None


async def batch_call(provider: str, failure: Failure, what: str, awaitable: Any) -> Any:
    """Await one Batch API request, turning a provider failure into a one-line error."""
    try:
        return await awaitable
    except Exception as exc:
        found = classify_with([failure], exc)
        if found is None:
            raise
        hint = (
            "check the API key for this provider"
            if found.status in (401, 403)
            else "try again later; nothing was lost"
        )
        raise BatchAPIError(
            f"{provider} batch API: {what} failed: {found.describe()}",
            hint=hint,
            transient=found.transient,
            status=found.status,
            retry_after=found.retry_after,
        ) from None


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from a Retry-After (seconds or HTTP date) or retry-after-ms header."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
