"""Settings, read once from the environment at start-up and passed down explicitly.

Secrets are held as ``SecretStr`` so they never show in a repr, a log line or an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

DEFAULT_HOME = ".decomposer"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    mistral_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    compatible_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    prices_file: Path | None = None
    prompts_dir: Path | None = None
    debug: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("DECOMPOSER_HOME") or DEFAULT_HOME)
        database_url = env.get("DECOMPOSER_DATABASE_URL") or f"sqlite:///{home / 'decomposer.db'}"
        return cls(
            home=home,
            database_url=database_url,
            mistral_api_key=_secret(env.get("MISTRAL_API_KEY")),
            openai_api_key=_secret(env.get("OPENAI_API_KEY")),
            compatible_api_key=_secret(env.get("DECOMPOSER_COMPATIBLE_API_KEY")),
            openai_base_url=env.get("DECOMPOSER_BASE_URL") or None,
            prices_file=_path(env.get("DECOMPOSER_PRICES")),
            prompts_dir=_path(env.get("DECOMPOSER_PROMPTS_DIR")),
            debug=env.get("DECOMPOSER_DEBUG", "") not in ("", "0", "false"),
        )

    def secrets(self) -> list[str]:
        """Every configured secret value, so output can be checked or scrubbed for them."""
        keys = (self.mistral_api_key, self.openai_api_key, self.compatible_api_key)
        return [k.get_secret_value() for k in keys if k is not None and k.get_secret_value()]


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
