"""OpenAI: its SDK as chat client (through Instructor), the Batch API, embeddings, key.

The ``openai`` SDK is imported inside the factories, never when the registry is loaded.
``compatible`` reuses these pieces against another base URL.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from decomposer.core.config import Settings
from decomposer.providers.spec import (
    CHAT_ENDPOINT,
    APIFailure,
    BatchSpec,
    EmbedFn,
    EmbedReply,
    FileLimits,
    Provider,
    ProviderConfig,
    Remote,
    batch_call,
    retry_after,
)

if TYPE_CHECKING:
    from instructor import AsyncInstructor

NAME = "openai"


def chat_client(cfg: ProviderConfig, key: str, http: httpx.AsyncClient) -> AsyncInstructor:
    """An Instructor client over the OpenAI SDK, on the injected HTTP client, SDK retries off."""
    import instructor
    import openai

    client = openai.AsyncOpenAI(
        api_key=key, base_url=cfg.base_url, http_client=http, max_retries=0, timeout=cfg.timeout_s
    )
    return instructor.from_openai(client, mode=cfg.instructor_mode)


def failure(err: BaseException) -> APIFailure | None:
    if "openai" not in sys.modules:
        return None
    import openai

    if isinstance(err, openai.APIStatusError):
        return APIFailure("http", err.status_code, retry_after(err.response.headers))
    if isinstance(err, openai.APITimeoutError):
        return APIFailure("timeout")
    if isinstance(err, openai.APIConnectionError):
        return APIFailure("connection")
    return None


class Batches:
    """The OpenAI Batch API: upload a JSONL file, create a 24 h batch, download the results."""

    def __init__(self, key: str, http: httpx.AsyncClient, base_url: str | None) -> None:
        import openai

        self.sdk = openai.AsyncOpenAI(
            api_key=key, base_url=base_url, http_client=http, max_retries=0
        )

    async def _call(self, what: str, awaitable: Any) -> Any:
        return await batch_call(NAME, failure, what, awaitable)

    async def create(
        self, content: bytes, name: str, model: str, metadata: dict[str, str]
    ) -> tuple[str, str, str]:
        uploaded = await self._call(
            "uploading the input file",
            self.sdk.files.create(file=(name, content, "application/jsonl"), purpose="batch"),
        )
        created = await self._call(
            "creating the batch",
            self.sdk.batches.create(
                completion_window="24h",
                endpoint=CHAT_ENDPOINT,
                input_file_id=uploaded.id,
                metadata=metadata,
            ),
        )
        return str(created.id), str(uploaded.id), str(created.status)

    async def retrieve(self, batch_id: str) -> Remote:
        return _remote(await self._call("reading the batch", self.sdk.batches.retrieve(batch_id)))

    async def cancel(self, batch_id: str) -> Remote:
        return _remote(await self._call("cancelling the batch", self.sdk.batches.cancel(batch_id)))

    async def delete_file(self, file_id: str) -> None:
        await self._call("deleting a file", self.sdk.files.delete(file_id))

    async def download(self, file_id: str) -> str:
        content = await self._call("downloading results", self.sdk.files.content(file_id))
        return str(content.text)


def _remote(found: Any) -> Remote:
    counts = found.request_counts
    errors = None
    if found.errors is not None and found.errors.data:
        errors = "; ".join(e.message or e.code or "error" for e in found.errors.data)
    return Remote(
        status=str(found.status),
        output_file_id=found.output_file_id,
        error_file_id=found.error_file_id,
        total=counts.total if counts else 0,
        succeeded=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        errors=errors,
    )


def batch_line(cfg: ProviderConfig, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": CHAT_ENDPOINT, "body": body}


def embedder(key: str, http: httpx.Client, base_url: str | None, timeout_s: float) -> EmbedFn:
    """Embeddings as floats (not base64), from OpenAI or any server speaking its API."""
    import openai

    sdk = openai.OpenAI(
        api_key=key, base_url=base_url, http_client=http, max_retries=0, timeout=timeout_s
    )

    def embed(model: str, texts: list[str]) -> EmbedReply:
        response = sdk.embeddings.create(model=model, input=texts, encoding_format="float")
        items = sorted(response.data, key=lambda d: d.index)
        usage = getattr(response, "usage", None)
        return EmbedReply(
            [list(item.embedding) for item in items],
            int(getattr(usage, "prompt_tokens", 0) or 0),
        )

    return embed


def _secret(settings: Settings) -> SecretStr | None:
    return settings.openai_api_key


PROVIDER = Provider(
    name=NAME,
    key_variable="OPENAI_API_KEY",
    secret=_secret,
    chat_client=chat_client,
    failure=failure,
    instructor_provider="openai",
    default_model="gpt-4o-mini",
    batch=BatchSpec(
        client=Batches,
        limits=FileLimits(lines=50_000, bytes=200 * 1024 * 1024),
        line=batch_line,
        endings={
            "completed": "completed",
            "failed": "failed",
            "expired": "expired",
            "cancelled": "cancelled",
        },
    ),
    embedder=embedder,
    default_embed_model="text-embedding-3-small",
    embed_thresholds=(0.55, 0.35),
)
