"""Shared fixtures: a temp data dir per test, no real keys, wire-format builders for providers."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from decomposer.core.config import Settings
from decomposer.store import Store, open_store

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
MISTRAL_URL = "https://api.mistral.ai/v1/chat/completions"
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
SECRET = "sk-test-SECRET-do-not-leak-1234567890"

DOC = (
    "# AcmeDB\n\nAcmeDB supports point-in-time recovery to any second within 35 days.\n\n"
    "## Replication\n\nUnlike PostgreSQL, AcmeDB replicates synchronously across three zones "
    "by default.\n\n## Pricing\n\nThe Starter plan costs $0.10 per GB-month. A free tier "
    "includes 1 GB of storage.\n"
)

PROFILE_NONE: dict[str, Any] = {
    "type": None,
    "pricing_model": None,
    "starting_price": None,
    "free_tier": None,
}


def capability(name: str, quote: str, category: str = "platform") -> dict[str, Any]:
    return {
        "name": name,
        "category": category,
        "description": f"{name} as described by the vendor.",
        "unique": f"{name} is on by default.",
        "vs_alternatives": "Not stated in the docs.",
        "evidence": [quote],
    }


GOOD = {
    "capabilities": [
        capability("Point-in-time recovery", "point-in-time recovery to any second within 35 days"),
        capability("Synchronous replication", "replicates synchronously across three zones"),
    ],
    "profile": {
        "type": None,
        "pricing_model": "freemium",
        "starting_price": {
            "amount": 0.1,
            "currency": "USD",
            "unit": "GB-month",
            "evidence": "The Starter plan costs $0.10 per GB-month.",
        },
        "free_tier": {"available": True, "evidence": "A free tier includes 1 GB of storage."},
    },
}
BAD_QUOTE = {
    "capabilities": [capability("Point-in-time recovery", "AcmeDB offers 90-day backups")],
    "profile": PROFILE_NONE,
}


def completion(
    payload: dict[str, Any] | str,
    *,
    tools: bool = False,
    finish_reason: str | None = None,
    prompt_tokens: int = 300,
    completion_tokens: int = 100,
    model: str = "mistral-small-latest",
) -> dict[str, Any]:
    """A chat completion body as Mistral and OpenAI both send it."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tools:
        message = {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call1",
                    "type": "function",
                    "function": {"name": "Extraction", "arguments": text},
                }
            ],
        }
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "model": model,
        "created": 1765000000,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if tools else "stop"),
            }
        ],
    }


def ok(payload: dict[str, Any] | str, **kw: Any) -> httpx.Response:
    return httpx.Response(200, json=completion(payload, **kw))


def worker_redis_url(base: str, worker: int) -> str:
    """The Redis URL of pytest-xdist worker ``gwN``: the base URL's DB number minus N, so the
    workers never share a DB (two tests may ``FLUSHDB`` and run Celery queues at once) and the
    numbers stay within Redis's 16 (CI's base DB 15 gives 15 and 14)."""
    parts = urlsplit(base)
    db = int(parts.path.strip("/") or 0) - worker
    if db < 0:
        raise pytest.UsageError(
            f"DECOMPOSER_TEST_REDIS_URL={base} leaves no Redis DB for xdist worker gw{worker}: "
            "worker gwN uses DB base-N, so raise the base DB or run fewer workers (-n)"
        )
    return urlunsplit(parts._replace(path=f"/{db}"))


def pytest_configure(config: pytest.Config) -> None:
    worker = getattr(config, "workerinput", {}).get("workerid")
    base = os.environ.get("DECOMPOSER_TEST_REDIS_URL")
    if worker and base:
        os.environ["DECOMPOSER_TEST_REDIS_URL"] = worker_redis_url(base, int(worker[2:]))


LONGEST_FIRST = (
    "test_worker.py",
    "test_cli.py",
    "test_fuzz.py",
    "test_llm_copy.py",
    "test_jobs.py",
    "test_concurrent_runs.py",
)
"""The files that take longest (serially: 36, 22, 20, 20, 17 and 15 s), longest first."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest files first: pytest-xdist's ``--dist load`` (`make test`) hands tests out in
    this order, so the last ones are short and neither worker waits long for the other at the
    end (with test_worker.py last, one worker sat idle for most of its ~40 s)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store at the newest schema, made once per session (once per pytest-xdist worker, in that
    worker's own temp dir): each test starts from a copy of it instead of running every migration
    again (about 0.12 s a test)."""
    path = tmp_path_factory.mktemp("template") / "decomposer.db"
    open_store(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture(autouse=True)
def _isolated(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    migrated_store: Path,
) -> Iterator[None]:
    for var in (
        "MISTRAL_API_KEY",
        "OPENAI_API_KEY",
        "DECOMPOSER_COMPATIBLE_API_KEY",
        "DECOMPOSER_DATABASE_URL",
        "DECOMPOSER_BASE_URL",
        "DECOMPOSER_PRICES",
        "DECOMPOSER_PROMPTS_DIR",
        "DECOMPOSER_REVIEWER",
        "DECOMPOSER_REDIS_URL",
        "DECOMPOSER_UI_TOKEN",
        "DECOMPOSER_DEBUG",
    ):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("DECOMPOSER_HOME", str(home))
    if request.node.get_closest_marker("fresh_home") is None:
        home.mkdir()
        shutil.copyfile(migrated_store, home / "decomposer.db")
    yield


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = open_store(settings.database_url)
    yield s
    s.dispose()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fake_sleep(sleeps: list[float]) -> Callable[[float], Any]:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return sleep


def required_service(variable: str, what: str) -> str:
    """The service URL from the environment; skip without it, fail when CI requires it."""
    url = os.environ.get(variable)
    if url:
        return url
    if os.environ.get("DECOMPOSER_REQUIRE_SERVICES"):
        pytest.fail(f"{variable} is required when DECOMPOSER_REQUIRE_SERVICES=1")
    pytest.skip(f"{what} not configured: set {variable}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database per test, so concurrent runs never share tables."""
    base = required_service("DECOMPOSER_TEST_DATABASE_URL", "PostgreSQL")
    name = f"decomposer_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class CLI:
    """Runs the real CLI entry point in-process and captures what it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        from decomposer.cli.app import main

        self.capsys.readouterr()
        code = main(list(args))
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(capsys)
