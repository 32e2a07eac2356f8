"""Choosing a provider: validating a user's provider, model, mode, endpoint and key choice,
building its chat client, and classifying its errors.

Everything vendor-specific lives in the provider modules, reached through the registry. The
HTTP client is always injected, so tests (respx) and the offline demo (replay transport) run
the real SDK and Instructor code paths. SDK-internal retries are off: ``calls.caller`` owns
retrying.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

import httpx

from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError
from decomposer.core.redact import protect
from decomposer.providers.registry import REGISTRY, get_provider
from decomposer.providers.spec import (
    DEFAULT_MODE,
    MODES,
    TRANSIENT_STATUS,
    APIFailure,
    Provider,
    ProviderConfig,
    chain,
    classify_with,
    retry_after,
)

if TYPE_CHECKING:
    from instructor import AsyncInstructor

PROVIDERS = tuple(REGISTRY)
__all__ = [
    "DEFAULT_MODE",
    "MODES",
    "PROVIDERS",
    "TRANSIENT_STATUS",
    "APIFailure",
    "Provider",
    "ProviderConfig",
    "api_key",
    "check_base_url",
    "classify",
    "endpoint",
    "endpoint_of",
    "get_provider",
    "make_client",
    "resolve",
    "retry_after",
]


def resolve(
    settings: Settings,
    provider: str = "mistral",
    model: str | None = None,
    mode: str | None = None,
    base_url: str | None = None,
    max_tokens: int = 4096,
) -> ProviderConfig:
    """Validate a user's choice of provider, model, mode and endpoint."""
    spec = get_provider(provider)
    chosen_mode = mode or DEFAULT_MODE
    if chosen_mode not in spec.modes:
        raise ConfigError(
            f"unknown mode {chosen_mode!r}", hint=f"use one of {', '.join(spec.modes)}"
        )
    url = endpoint(settings, provider, base_url)
    chosen_model = model or spec.default_model
    if not chosen_model:
        raise ConfigError(f"--model is required for the {provider} provider")
    if max_tokens < 256:
        raise ConfigError("--max-tokens must be at least 256")
    return ProviderConfig(provider, chosen_model, chosen_mode, url, max_tokens=max_tokens)


def endpoint(
    settings: Settings, provider: str, base_url: str | None, what: str = "provider"
) -> str | None:
    """The checked base URL: given, or for a provider that needs one the configured default."""
    needs = get_provider(provider).needs_base_url
    url = base_url or (settings.openai_base_url if needs else None)
    if needs and not url:
        raise ConfigError(
            f"the {provider} {what} needs a server address",
            hint="pass --base-url http://host:port/v1 or set DECOMPOSER_BASE_URL",
        )
    if url is not None:
        check_base_url(url)
    return url


def endpoint_of(exc: BaseException) -> str:
    """Host and path of the request behind a failure, for the error message: never the query
    string or headers, where a key could be."""
    for err in chain(exc):
        for holder in (err, getattr(err, "response", None), getattr(err, "raw_response", None)):
            try:
                url = holder.request.url  # type: ignore[union-attr]
            except (AttributeError, RuntimeError):  # httpx raises RuntimeError when unset
                continue
            port = f":{url.port}" if url.port else ""
            return f"{url.host}{port}{url.path}"
    return "the provider"


def check_base_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or " " in url:
        raise ConfigError(
            f"malformed base URL {url!r}",
            hint="expected http(s)://host[:port]/path, e.g. http://127.0.0.1:8000/v1",
        )


def api_key(settings: Settings, provider: str, *, required: bool = True) -> str:
    """The provider's key from its variable; a typed error naming the variable if missing.

    A key handed out is registered with ``core.redact`` first, so no log record shows it."""
    spec = get_provider(provider)
    secret = spec.secret(settings)
    if secret is not None:
        protect(secret.get_secret_value())
        return secret.get_secret_value()
    if not spec.key_required or not required:
        return "not-needed"
    raise ConfigError(
        f"no API key for {provider}: {spec.key_variable} is not set",
        hint=f"export {spec.key_variable}=... or run `make demo` for the offline replay",
    )


def make_client(cfg: ProviderConfig, key: str, http: httpx.AsyncClient) -> AsyncInstructor:
    """The provider's Instructor client on the injected HTTP client."""
    return get_provider(cfg.provider).chat_client(cfg, key, http)


def classify(exc: BaseException) -> APIFailure | None:
    """Find the transport/API failure behind an exception, unwrapping Instructor's wrapper."""
    return classify_with(list(dict.fromkeys(p.failure for p in REGISTRY.values())), exc)
