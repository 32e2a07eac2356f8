"""Mistral: its SDK as chat client (through Instructor), Batch jobs, ``mistral-embed``, key.

The ``mistralai`` SDK is imported inside the factories, never when the registry is loaded.
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
    text_or_none,
)

if TYPE_CHECKING:
    from instructor import AsyncInstructor

NAME = "mistral"


def chat_client(cfg: ProviderConfig, key: str, http: httpx.AsyncClient) -> AsyncInstructor:
    """An Instructor client over the Mistral SDK, on the injected HTTP client."""
    import instructor
    from mistralai.client import Mistral

    sdk = Mistral(
        api_key=key,
        async_client=http,
        server_url=cfg.base_url,
        timeout_ms=int(cfg.timeout_s * 1000),
    )
    return instructor.from_mistral(sdk, mode=cfg.instructor_mode, use_async=True)


def failure(err: BaseException) -> APIFailure | None:
    if "mistralai.client.errors" not in sys.modules:
        return None
    from mistralai.client.errors import MistralError

    if isinstance(err, MistralError):
        return APIFailure("http", err.status_code, retry_after(err.headers))
    return None


class Batches:
    """Mistral batch jobs: the input file is uploaded, the model is named on the job."""

    def __init__(self, key: str, http: httpx.AsyncClient, base_url: str | None) -> None:
        from mistralai.client import Mistral

        self.sdk = Mistral(api_key=key, async_client=http, server_url=base_url)

    async def _call(self, what: str, awaitable: Any) -> Any:
        return await batch_call(NAME, failure, what, awaitable)

    async def create(
        self, content: bytes, name: str, model: str, metadata: dict[str, str]
    ) -> tuple[str, str, str]:
        uploaded = await self._call(
            "uploading the input file",
            self.sdk.files.upload_async(
                file={"file_name": name, "content": content}, purpose="batch"
            ),
        )
        job = await self._call(
            "creating the batch job",
            self.sdk.batch.jobs.create_async(
                endpoint=CHAT_ENDPOINT, input_files=[uploaded.id], model=model, metadata=metadata
            ),
        )
        return str(job.id), str(uploaded.id), str(job.status)

    async def retrieve(self, batch_id: str) -> Remote:
        job = await self._call(
            "reading the batch job", self.sdk.batch.jobs.get_async(job_id=batch_id)
        )
        return _remote(job)

    async def cancel(self, batch_id: str) -> Remote:
        job = await self._call(
            "cancelling the batch job", self.sdk.batch.jobs.cancel_async(job_id=batch_id)
        )
        return _remote(job)

    async def delete_file(self, file_id: str) -> None:
        await self._call("deleting a file", self.sdk.files.delete_async(file_id=file_id))

    async def download(self, file_id: str) -> str:
        response = await self._call(
            "downloading results", self.sdk.files.download_async(file_id=file_id)
        )
        try:
            data: bytes = await response.aread()
            return data.decode("utf-8")
        finally:
            await response.aclose()


def _remote(job: Any) -> Remote:
    errors = "; ".join(e.message for e in job.errors) or None
    return Remote(
        status=str(job.status),
        output_file_id=text_or_none(job.output_file),
        error_file_id=text_or_none(job.error_file),
        total=job.total_requests,
        succeeded=job.succeeded_requests,
        failed=job.failed_requests,
        errors=errors,
    )


def batch_line(cfg: ProviderConfig, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "body": body}


def embedder(key: str, http: httpx.Client, base_url: str | None, timeout_s: float) -> EmbedFn:
    """Embeddings through the SDK (kwarg ``inputs``, wire field ``input``)."""
    from mistralai.client import Mistral

    sdk = Mistral(api_key=key, client=http, server_url=base_url, timeout_ms=int(timeout_s * 1000))

    def embed(model: str, texts: list[str]) -> EmbedReply:
        response = sdk.embeddings.create(model=model, inputs=texts)
        items = sorted(response.data, key=lambda d: d.index or 0)
        usage = getattr(response, "usage", None)
        return EmbedReply(
            [list(item.embedding or []) for item in items],
            int(getattr(usage, "prompt_tokens", 0) or 0),
        )

    return embed


def _secret(settings: Settings) -> SecretStr | None:
    return settings.mistral_api_key


PROVIDER = Provider(
    name=NAME,
    key_variable="MISTRAL_API_KEY",
    secret=_secret,
    chat_client=chat_client,
    failure=failure,
    instructor_provider="mistral",
    default_model="mistral-small-latest",
    model_in_batch_line=False,
    batch=BatchSpec(
        client=Batches,
        limits=FileLimits(lines=1_000_000, bytes=512 * 1024 * 1024),
        line=batch_line,
        endings={
            "SUCCESS": "completed",
            "FAILED": "failed",
            "TIMEOUT_EXCEEDED": "expired",
            "CANCELLED": "cancelled",
        },
    ),
    embedder=embedder,
    default_embed_model="mistral-embed",
    embed_thresholds=(0.82, 0.75),
    embed_batch_size=64,
)
