"""OpenAI-compatible servers (vLLM, Ollama, llama.cpp): OpenAI's client at a given base URL.

It needs a server address, no key (unless the server wants one) and has no Batch API.
"""

from __future__ import annotations

from pydantic import SecretStr

from decomposer.core.config import Settings
from decomposer.providers import openai
from decomposer.providers.spec import Provider


def _secret(settings: Settings) -> SecretStr | None:
    return settings.compatible_api_key


PROVIDER = Provider(
    name="openai-compatible",
    key_variable="DECOMPOSER_COMPATIBLE_API_KEY",
    secret=_secret,
    chat_client=openai.chat_client,
    failure=openai.failure,
    instructor_provider="openai",
    key_required=False,
    needs_base_url=True,
    embedder=openai.embedder,
    embed_thresholds=(0.55, 0.35),
)
