"""Per-model token prices, kept as data (``data/prices.json``) and overridable by a user file."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

from decomposer.core.errors import ConfigError

PER = 1_000_000


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, dict[str, tuple[float, float]]]

    def cost(
        self,
        provider: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        base_url: str | None = None,
    ) -> float | None:
        """USD for one call, or ``None`` when the model has no known price. The bundled free
        ``openai-compatible`` wildcard is for servers on this machine or network: a remote host
        (a paid one, maybe) without its own price is unknown, not $0."""
        by_model = self.prices.get(provider, {})
        price = by_model.get(model)
        if price is None and (provider != "openai-compatible" or is_local(base_url)):
            price = by_model.get("*")
        if price is None:
            return None
        return round((tokens_in * price[0] + tokens_out * price[1]) / PER, 8)


def is_local(base_url: str | None) -> bool:
    """A loopback or private-network host (Ollama, vLLM, llama.cpp on your own machines)."""
    host = urlparse(base_url or "").hostname or ""
    if host == "localhost" or host.endswith((".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def load_prices(override: Path | None = None) -> PriceTable:
    bundled = resources.files("decomposer").joinpath("data/prices.json").read_text("utf-8")
    table = _parse(json.loads(bundled), "bundled prices")
    if override is not None:
        try:
            extra = json.loads(override.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read price file {override}: {exc}") from None
        for provider, models in _parse(extra, str(override)).items():
            table.setdefault(provider, {}).update(models)
    return PriceTable(table)


def _parse(raw: object, origin: str) -> dict[str, dict[str, tuple[float, float]]]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected an object of providers")
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for provider, models in raw.items():
        if provider.startswith("_"):
            continue
        if not isinstance(models, dict):
            raise ConfigError(f"{origin}: {provider} must map model names to [input, output]")
        for model, pair in models.items():
            if not (
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(p, int | float) and p >= 0 for p in pair)
            ):
                raise ConfigError(
                    f"{origin}: {provider}/{model} must be [input, output] USD per 1M"
                )
            out.setdefault(provider, {})[model] = (float(pair[0]), float(pair[1]))
    return out
