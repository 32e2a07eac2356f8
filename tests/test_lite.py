"""The SQLite fast path for listing commands: same rows as the full path, used only when safe."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from decomposer.core.config import Settings
from decomposer.store import open_store
from decomposer.store.lite import read_only, sqlite_file
from decomposer.store.summaries import list_tools, tool_summaries
from pages_support import build_demo, install_db


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def demo(demo_db: Path, settings: Settings) -> Settings:
    install_db(demo_db, settings.home)
    return settings


def full_path(url: str) -> list[object]:
    store = open_store(url)
    try:
        with store.transaction() as session:
            return list(list_tools(session))
    finally:
        store.dispose()


def test_fast_and_full_paths_give_the_same_rows(demo: Settings) -> None:
    with read_only(demo.database_url) as conn:
        assert conn is not None  # the demo store is current, so the fast path is taken
    fast = tool_summaries(demo.database_url)
    assert fast == full_path(demo.database_url)
    counts = {t.slug: (t.documents, t.capabilities) for t in fast}
    assert counts["mistral-api"][0] == 7 and counts["llama-4"][0] == 3
    assert all(caps > 0 for _, caps in counts.values() if _)
    assert [t.slug for t in fast] == sorted(counts)


def test_postgresql_runs_the_same_query(pg_url: str, demo: Settings) -> None:
    with read_only(pg_url) as conn:
        assert conn is None
    assert tool_summaries(pg_url) == []
    store = open_store(pg_url)
    with store.transaction() as session:
        session.execute(
            text(
                "INSERT INTO tools (slug, name, type, created_at) "
                "VALUES ('b', 'B', 'API', now()), ('a', 'A', NULL, now())"
            )
        )
    store.dispose()
    rows = tool_summaries(pg_url)
    assert [(t.slug, t.type, t.documents, t.capabilities) for t in rows] == [
        ("a", None, 0, 0),
        ("b", "API", 0, 0),
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////tmp/x.db", Path("/tmp/x.db")),
        ("sqlite:///rel/x.db", Path("rel/x.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("sqlite:////tmp/x.db?mode=ro", None),
        ("postgresql+psycopg://u@h/db", None),
    ],
)
def test_only_plain_sqlite_file_urls_take_the_fast_path(url: str, expected: Path | None) -> None:
    assert sqlite_file(url) == expected


def test_missing_file_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    with read_only(f"sqlite:///{db}") as conn:
        assert conn is None
    assert not db.exists()


def test_a_store_behind_the_newest_schema_goes_the_full_way(demo: Settings) -> None:
    db = sqlite_file(demo.database_url)
    assert db is not None
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    conn.close()
    with read_only(demo.database_url) as fast:
        assert fast is None


def test_a_file_that_is_not_a_database_goes_the_full_way(tmp_path: Path) -> None:
    db = tmp_path / "noise.db"
    db.write_bytes(bytes(range(256)) * 64)
    with read_only(f"sqlite:///{db}") as conn:
        assert conn is None
