"""Documents are keyed by tool + a stable source key, so a moved folder re-uses its chunks and
costs no model call; migration 0010 gives existing rows keys."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
import respx
from alembic import command
from sqlalchemy import create_engine, select, text

from conftest import DOC, GOOD, MISTRAL_URL, SECRET, ok
from decomposer.store import open_store
from decomposer.store.engine import alembic_config
from decomposer.store.models import Chunk, Document


def test_a_moved_folder_reuses_chunks_and_costs_no_call(cli, tmp_path, settings, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    first = tmp_path / "a" / "acme-docs"
    first.mkdir(parents=True)
    (first / "acme.md").write_text(DOC)
    (first / "guides").mkdir()
    (first / "guides" / "start.md").write_text("# Start\n\nRun `acme init` first.\n")
    assert cli("tool", "add", "AcmeDB")[0] == 0
    assert cli("ingest", "acmedb", str(first))[0] == 0
    store = open_store(settings.database_url)
    with store.transaction() as s:
        keys = sorted(s.scalars(select(Document.source_key)))
        chunk_ids = sorted(s.scalars(select(Chunk.id)))
    assert keys == ["acme-docs/acme.md", "acme-docs/guides/start.md"]
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        assert cli("extract", "acmedb")[0] == 0
        calls = route.call_count
        assert calls >= 1

        moved = tmp_path / "b" / "elsewhere" / "acme-docs"
        moved.parent.mkdir(parents=True)
        shutil.move(str(first), str(moved))
        code, out, err = cli("ingest", "acmedb", str(moved))
        assert code == 0, err
        assert "2 unchanged" in out and "0 chunks written" in out
        assert "now read from" in out
        code, out, err = cli("extract", "acmedb")
        assert code == 0, err
        assert route.call_count == calls  # every request answered from the cache
    assert "0 calls" in out
    with store.transaction() as s:
        assert sorted(s.scalars(select(Chunk.id))) == chunk_ids
        assert len(s.scalars(select(Document)).all()) == 2
        assert all(d.source.startswith(str(moved)) for d in s.scalars(select(Document)))
    store.dispose()


def test_two_folders_of_one_name_in_one_ingest_are_refused(cli, tmp_path):
    for parent in ("x", "y"):
        (tmp_path / parent / "docs").mkdir(parents=True)
        (tmp_path / parent / "docs" / "index.md").write_text(f"# {parent}\n\nText.\n")
    assert cli("tool", "add", "AcmeDB")[0] == 0
    code, _, err = cli(
        "ingest", "acmedb", str(tmp_path / "x" / "docs"), str(tmp_path / "y" / "docs")
    )
    assert code == 1 and "would both be stored as 'docs/index.md'" in err


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keys.db'}"
    return request.getfixturevalue("pg_url")


def test_migration_0010_keys_existing_rows(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, "0008")
    engine = create_engine(database_url)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO tools (id, slug, name, created_at) VALUES (1, 't', 'T', :now)"),
            {"now": now},
        )
        for doc_id, source in enumerate(
            [
                "/home/me/docs/a.md",
                "https://example.com/page",
                "/srv/other/docs/a.md",  # same folder and file name as the first
            ],
            start=1,
        ):
            conn.execute(
                text(
                    "INSERT INTO documents (id, tool_id, source, title, media_type, content_hash,"
                    " text, ingested_at, updated_at) VALUES (:id, 1, :source, 't', 'text/markdown',"
                    " 'h', 'x', :now, :now)"
                ),
                {"id": doc_id, "source": source, "now": now},
            )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        keys = dict(conn.execute(text("SELECT id, source_key FROM documents")).all())
    engine.dispose()
    assert keys == {1: "docs/a.md", 2: "https://example.com/page", 3: "/srv/other/docs/a.md"}
