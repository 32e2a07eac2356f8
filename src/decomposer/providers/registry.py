"""The provider registry: one line per provider module, looked up by name.

Adding a provider is one module that builds a ``Provider`` and one line here.
"""

from __future__ import annotations

from decomposer.core.errors import ConfigError
from decomposer.providers import compatible, mistral, openai
from decomposer.providers.spec import Provider

REGISTRY: dict[str, Provider] = {
    mistral.PROVIDER.name: mistral.PROVIDER,
    openai.PROVIDER.name: openai.PROVIDER,
    compatible.PROVIDER.name: compatible.PROVIDER,
}


def get_provider(name: str) -> Provider:
    found = REGISTRY.get(name)
    if found is None:
        raise ConfigError(f"unknown provider {name!r}", hint=f"use one of {', '.join(REGISTRY)}")
    return found
