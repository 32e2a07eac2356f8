"""Model providers: which SDK, which Instructor mode, which key, and how errors are classified.

The HTTP client is always injected, so tests (respx) and the offline demo (replay transport) run
the real SDK and Instructor code paths. SDK-internal retries are off: ``llm`` owns retrying.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import httpx
import instructor
import openai
from instructor import Mode
from mistralai.client import Mistral
from mistralai.client.errors import MistralError

from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError

PROVIDERS = ("mistral", "openai", "openai-compatible")
MODES = {"tools": Mode.TOOLS, "json_schema": Mode.JSON_SCHEMA}
DEFAULT_MODELS = {"mistral": "mistral-small-latest", "openai": "gpt-4o-mini"}
DEFAULT_MODE = "json_schema"
KEY_VARIABLES = {
    "mistral": "MISTRAL_API_KEY",
    "openai": "OPENAI_API_KEY",
    "openai-compatible": "DECOMPOSER_COMPATIBLE_API_KEY",
}
TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


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
        return MODES[self.mode]


def resolve(
    settings: Settings,
    provider: str = "mistral",
    model: str | None = None,
    mode: str | None = None,
    base_url: str | None = None,
    max_tokens: int = 4096,
) -> ProviderConfig:
    """Validate a user's choice of provider, model, mode and endpoint."""
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown provider {provider!r}", hint=f"use one of {', '.join(PROVIDERS)}"
        )
    chosen_mode = mode or DEFAULT_MODE
    if chosen_mode not in MODES:
        raise ConfigError(f"unknown mode {chosen_mode!r}", hint=f"use one of {', '.join(MODES)}")
    url = endpoint(settings, provider, base_url)
    chosen_model = model or DEFAULT_MODELS.get(provider)
    if not chosen_model:
        raise ConfigError(f"--model is required for the {provider} provider")
    if max_tokens < 256:
        raise ConfigError("--max-tokens must be at least 256")
    return ProviderConfig(provider, chosen_model, chosen_mode, url, max_tokens=max_tokens)


def endpoint(
    settings: Settings, provider: str, base_url: str | None, what: str = "provider"
) -> str | None:
    """The checked base URL: given, or for openai-compatible the configured default (required)."""
    url = base_url or (settings.openai_base_url if provider == "openai-compatible" else None)
    if provider == "openai-compatible" and not url:
        raise ConfigError(
            f"the openai-compatible {what} needs a server address",
            hint="pass --base-url http://host:port/v1 or set DECOMPOSER_BASE_URL",
        )
    if url is not None:
        check_base_url(url)
    return url


def check_base_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or " " in url:
        raise ConfigError(
            f"malformed base URL {url!r}",
            hint="expected http(s)://host[:port]/path, e.g. http://127.0.0.1:8000/v1",
        )


def api_key(settings: Settings, provider: str, *, required: bool = True) -> str:
    secret = {
        "mistral": settings.mistral_api_key,
        "openai": settings.openai_api_key,
        "openai-compatible": settings.compatible_api_key,
    }[provider]
    if secret is not None:
        return secret.get_secret_value()
    if provider == "openai-compatible" or not required:
        return "not-needed"
    raise ConfigError(
        f"no API key for {provider}: {KEY_VARIABLES[provider]} is not set",
        hint=f"export {KEY_VARIABLES[provider]}=... or run `make demo` for the offline replay",
    )


def make_client(
    cfg: ProviderConfig, key: str, http: httpx.AsyncClient
) -> instructor.AsyncInstructor:
    """A fresh Instructor client per call, so per-call hooks never see another call's events."""
    if cfg.provider == "mistral":
        sdk = Mistral(
            api_key=key,
            async_client=http,
            server_url=cfg.base_url,
            timeout_ms=int(cfg.timeout_s * 1000),
        )
        return instructor.from_mistral(sdk, mode=cfg.instructor_mode, use_async=True)
    client = openai.AsyncOpenAI(
        api_key=key,
        base_url=cfg.base_url,
        http_client=http,
        max_retries=0,
        timeout=cfg.timeout_s,
    )
    return instructor.from_openai(client, mode=cfg.instructor_mode)


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


def classify(exc: BaseException) -> APIFailure | None:
    """Find the transport/API failure behind an exception, unwrapping Instructor's wrapper."""
    for err in _chain(exc):
        if isinstance(err, MistralError):
            return APIFailure("http", err.status_code, retry_after(err.headers))
        if isinstance(err, openai.APIStatusError):
            return APIFailure("http", err.status_code, retry_after(err.response.headers))
        if isinstance(err, openai.APITimeoutError | httpx.TimeoutException):
            return APIFailure("timeout")
        if isinstance(err, openai.APIConnectionError | httpx.TransportError):
            return APIFailure("connection")
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


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
