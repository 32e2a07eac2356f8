"""Bad settings, stores and arguments outside ingest: one line on stderr, exit 1 or 2, nothing
written. Ingest and import inputs have their own table in test_ingest_inputs.py."""

from __future__ import annotations

import re
import socket
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from conftest import CLI
from decomposer.core.config import Settings

SECRET = "s3cret-pw-4711"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other socket already listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def _current_store(home: Path) -> None:
    from decomposer.cli.app import main

    assert main(["tools"]) == 0


def _random_bytes(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "decomposer.db").write_bytes(bytes((i * 7919) % 251 for i in range(40_000)))


def _newer_store(version: str | None) -> Callable[[Path], None]:
    def setup(home: Path) -> None:
        _current_store(home)  # then pretend a later version migrated it
        with sqlite3.connect(home / "decomposer.db") as conn:
            conn.execute("UPDATE alembic_version SET version_num = '0099'")
            if version is None:
                conn.execute("DROP TABLE store_info")
            else:
                conn.execute("UPDATE store_info SET value = ?", (version,))
        conn.close()

    return setup


@dataclass(frozen=True)
class Case:
    args: list[str]
    message: str  # a regex matched against the whole line after "error: "
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] = _current_store
    code: int = 1


CASES: dict[str, Case] = {
    "serve --port 99999": Case(
        ["serve", "--port", "99999"], r"--port must be between 1 and 65535, got 99999"
    ),
    "serve --port 0": Case(["serve", "--port", "0"], r"--port must be between 1 and 65535, got 0"),
    "serve on a taken port": Case(
        ["serve", "--port", "{busy}"], r"cannot listen on 127\.0\.0\.1:\d+: Address already in use"
    ),
    "database URL that is not a URL": Case(
        ["tools"],
        r"the database URL is not a URL — use sqlite:///PATH or postgresql\+psycopg://\S+ in "
        r"DECOMPOSER_DATABASE_URL",
        env={"DECOMPOSER_DATABASE_URL": "notaurl"},
    ),
    "unsupported dialect": Case(
        ["tools"],
        r"unsupported database 'oracle': decomposer stores its data in SQLite or PostgreSQL — .*",
        env={"DECOMPOSER_DATABASE_URL": f"oracle://scott:{SECRET}@db.example/orcl"},
    ),
    "unknown dialect": Case(
        ["capabilities", "x"],
        r"unsupported database 'nosuchdb': .*",
        env={"DECOMPOSER_DATABASE_URL": "nosuchdb://h/d"},
    ),
    "driver not installed": Case(
        ["tools"],
        r"no database driver 'postgresql\+asyncpg' is installed — .*",
        env={"DECOMPOSER_DATABASE_URL": f"postgresql+asyncpg://u:{SECRET}@127.0.0.1/test"},
    ),
    "database on a closed port": Case(
        ["tools"],
        r"cannot open the database \(OperationalError: connection failed: .*port \d+ failed: "
        r"Connection refused\) — check DECOMPOSER_DATABASE_URL or DECOMPOSER_HOME",
        env={"DECOMPOSER_DATABASE_URL": f"postgresql+psycopg://u:{SECRET}@127.0.0.1:{{closed}}/t"},
    ),
    "store file of random bytes": Case(
        ["tools"],
        r"cannot open the database: \S+/decomposer\.db is not a SQLite database — .*",
        setup=_random_bytes,
    ),
    "store file of random bytes, ORM command": Case(
        ["capabilities", "x"],
        r"cannot open the database: \S+/decomposer\.db is not a SQLite database — .*",
        setup=_random_bytes,
    ),
    "store migrated by a newer version": Case(
        ["tools"],
        r"this store was migrated by decomposer 9\.1\.0 \(schema 0099\); decomposer \S+ knows "
        r"schemas up to \w+ — upgrade decomposer .*",
        setup=_newer_store("9.1.0"),
    ),
    "store from a newer version that did not say which": Case(
        ["capabilities", "x"],
        r"this store was migrated by a newer decomposer \(schema 0099\); .*",
        setup=_newer_store(None),
    ),
    "extract an unknown tool, no key set": Case(
        ["extract", "nope"], r"unknown tool 'nope' — add one with `decomposer tool add NAME`"
    ),
    "jobs for a run id past any row": Case(
        ["jobs", "--run", "99999999999999999999999"],
        r"Invalid value for '--run': .*less than or equal to 9223372036854775807 .*",
        code=2,
    ),
}


def files(home: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(
    cli: CLI,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    busy_port: int,
    closed_port: int,
    case: str,
) -> None:
    spec = CASES[case]
    spec.setup(settings.home)
    for name, value in spec.env.items():
        monkeypatch.setenv(name, value.replace("{closed}", str(closed_port)))
    args = [a.replace("{busy}", str(busy_port)) for a in spec.args]
    before = files(settings.home)
    code, out, err = cli(*args)
    assert code == spec.code, (out, err)
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert re.fullmatch(spec.message, err[len("error: ") : -1]), err
    assert "Traceback" not in out + err and SECRET not in out + err
    assert files(settings.home) == before


def test_the_version_that_migrated_a_store_is_recorded(cli: CLI, settings: Settings) -> None:
    from importlib.metadata import version

    assert cli("tools")[0] == 0
    with sqlite3.connect(settings.home / "decomposer.db") as conn:
        rows = conn.execute("SELECT key, value FROM store_info").fetchall()
    conn.close()
    assert rows == [("schema_written_by", version("decomposer"))]


def test_web_answers_404_for_a_document_id_past_any_row(settings: Settings) -> None:
    from decomposer.store import open_store
    from decomposer.web import UISettings, create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from fastapi.testclient import TestClient

    store = open_store(settings.database_url)
    ui = UISettings(token=None, secret="test-secret-" + "x" * 20, allowed_hosts=None)
    client = TestClient(create_app(settings, ui, store=store), follow_redirects=False)
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    client.post("/login", data={"csrf_token": csrf.group(1), "name": "alice", "next": "/"})
    for doc_id in ("99999999999999999999999", "9223372036854775808", "0", "-1"):
        r = client.get(f"/documents/{doc_id}")
        assert r.status_code == 404, (doc_id, r.status_code)
    store.dispose()
