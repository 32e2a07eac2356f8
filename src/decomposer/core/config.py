"""Settings, read once from the environment at start-up and passed down explicitly.

Secrets are held as ``SecretStr`` so they never show in a repr, a log line or an error.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from decomposer.core.errors import ConfigError

LEGACY_HOME = ".decomposer"
"""The data dir's old default, relative to the current folder: still used when it exists there."""
APP_NAME = "decomposer"
CONFIG_FILE = "config.toml"
DEFAULT_FETCH_DEADLINE = 60.0
"""Seconds one ingested URL may take in all (``DECOMPOSER_FETCH_DEADLINE``)."""
DEFAULT_MAX_DOCUMENT_MB = 20.0
"""Largest ingested file or URL body in MB (``DECOMPOSER_MAX_DOCUMENT_MB``)."""
DEFAULT_MAX_REQUEST_MB = 1.0
"""Largest request body the review server reads, in MB (``DECOMPOSER_MAX_REQUEST_MB``)."""
DEFAULT_WEB_BUSY_TIMEOUT = 2.0
"""Seconds a review-server write waits for the database's write lock before answering 503
(``DECOMPOSER_WEB_BUSY_TIMEOUT``); command-line writers wait 30 s."""


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
    redis_url: str | None = None
    reviewer: str | None = None
    """Who acts in the review audit trail: ``DECOMPOSER_REVIEWER``, else ``[review] reviewer``."""
    limits: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per provider ``{"rps": …, "tpm": …}`` from ``[limits.<provider>]`` in config.toml."""
    debug: bool = False
    fetch_deadline: float = DEFAULT_FETCH_DEADLINE
    max_document_bytes: int = int(DEFAULT_MAX_DOCUMENT_MB * 1024 * 1024)
    max_request_bytes: int = int(DEFAULT_MAX_REQUEST_MB * 1024 * 1024)
    web_busy_timeout: float = DEFAULT_WEB_BUSY_TIMEOUT
    job_lease_s: float = 120.0
    """How long a worker's job stays its own without a heartbeat (``DECOMPOSER_JOB_LEASE_S``)."""
    legacy_home: bool = False
    """The data dir is an old ``./.decomposer`` found in the current folder (the CLI says so)."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, home: Path | None = None
    ) -> Settings:
        """Settings from the environment; ``home`` (``--home``) wins over ``DECOMPOSER_HOME``."""
        env = os.environ if env is None else env
        home, legacy = resolve_home(home, env)
        config = _config_file(home / CONFIG_FILE)
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
            redis_url=env.get("DECOMPOSER_REDIS_URL") or None,
            reviewer=(env.get("DECOMPOSER_REVIEWER") or "").strip() or _reviewer(config),
            limits=_limits(config),
            debug=env.get("DECOMPOSER_DEBUG", "") not in ("", "0", "false"),
            fetch_deadline=_positive(env, "DECOMPOSER_FETCH_DEADLINE", DEFAULT_FETCH_DEADLINE),
            max_document_bytes=int(
                _positive(env, "DECOMPOSER_MAX_DOCUMENT_MB", DEFAULT_MAX_DOCUMENT_MB) * 1024 * 1024
            ),
            max_request_bytes=int(
                _positive(env, "DECOMPOSER_MAX_REQUEST_MB", DEFAULT_MAX_REQUEST_MB) * 1024 * 1024
            ),
            web_busy_timeout=_positive(
                env, "DECOMPOSER_WEB_BUSY_TIMEOUT", DEFAULT_WEB_BUSY_TIMEOUT
            ),
            job_lease_s=_lease(env.get("DECOMPOSER_JOB_LEASE_S")),
            legacy_home=legacy,
        )

    def secrets(self) -> list[str]:
        """Every configured secret value, so output can be checked or scrubbed for them."""
        keys = (self.mistral_api_key, self.openai_api_key, self.compatible_api_key)
        return [k.get_secret_value() for k in keys if k is not None and k.get_secret_value()]


def _lease(value: str | None) -> float:
    try:
        seconds = float(value) if value else 120.0
    except ValueError:
        seconds = 0.0
    if not 1.0 <= seconds <= 86400.0:
        raise ConfigError("DECOMPOSER_JOB_LEASE_S must be a number of seconds from 1 to 86400")
    return seconds


def user_home() -> Path:
    """The per-user data dir (``~/.local/share/decomposer`` on Linux, honouring XDG_DATA_HOME;
    ``~/Library/Application Support/decomposer`` on macOS; ``%LOCALAPPDATA%`` on Windows)."""
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def resolve_home(option: Path | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    """The data dir and whether it is a legacy ``./.decomposer``: ``--home``, else
    ``DECOMPOSER_HOME``, else an existing ``./.decomposer`` (the old default, so stores made
    before keep working), else the per-user dir. Nothing is created here."""
    if option is not None:
        return option, False
    if env.get("DECOMPOSER_HOME"):
        return Path(env["DECOMPOSER_HOME"]), False
    legacy = Path(LEGACY_HOME)
    if legacy.is_dir():
        return legacy, True
    return user_home(), False


def _config_file(path: Path) -> dict[str, Any]:
    """The data dir's optional config.toml: ``[limits.<provider>]`` and ``[review]``."""
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    unknown = set(raw) - {"limits", "review"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    return {"path": path, **raw}


def _limits(config: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``[limits.<provider>] rps = …, tpm = …``."""
    path = config.get("path")
    out: dict[str, dict[str, float]] = {}
    for provider, values in config.get("limits", {}).items():
        if not isinstance(values, dict) or set(values) - {"rps", "tpm"}:
            raise ConfigError(f"{path}: [limits.{provider}] takes only rps and tpm")
        if not all(isinstance(v, int | float) for v in values.values()):
            raise ConfigError(f"{path}: [limits.{provider}] values must be numbers")
        out[provider] = {k: float(v) for k, v in values.items()}
    return out


def _reviewer(config: Mapping[str, Any]) -> str | None:
    name = config.get("review", {}).get("reviewer")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{config.get('path')}: [review] reviewer must be a string")
    return (name.strip() or None) if name else None


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be a positive number, got {raw!r}")
    return value


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
