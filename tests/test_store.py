"""Migrations produce the expected schema on SQLite (and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from decomposer.store import open_store
from decomposer.store.engine import alembic_config

EXPECTED = {
    "tools": {"id", "slug", "name", "type", "vendor", "homepage", "created_at"},
    "api_tokens": {"id", "name", "token_hash", "hint", "created_at", "last_used_at", "revoked_at"},
    "store_info": {"key", "value"},
    "eval_runs": {
        "id",
        "golden_name",
        "golden_path",
        "golden_sha256",
        "provider",
        "model",
        "mode",
        "base_url",
        "prompt_version",
        "prompt_hash",
        "chunk_tokens",
        "pack_tokens",
        "answers",
        "code_version",
        "created_at",
        "settings",
        "report",
    },
    "documents": {
        "id",
        "tool_id",
        "source",
        "title",
        "media_type",
        "content_hash",
        "text",
        "ingested_at",
        "updated_at",
        "chunk_budget",
        "missing_since",
        "source_key",
    },
    "chunks": {"id", "document_id", "ordinal", "start", "end", "heading", "text", "tokens"},
    "extraction_runs": {
        "id",
        "tool_id",
        "provider",
        "model",
        "mode",
        "base_url",
        "temperature",
        "prompt_name",
        "prompt_version",
        "prompt_hash",
        "status",
        "error",
        "chunks_total",
        "chunks_done",
        "capabilities",
        "ungrounded",
        "max_tokens",
        "pack_tokens",
        "started_at",
        "finished_at",
    },
    "jobs": {
        "id",
        "run_id",
        "position",
        "chunk_ids",
        "request_hash",
        "tokens",
        "state",
        "attempts",
        "last_error",
        "worker",
        "lease_until",
        "batch_id",
        "created_at",
        "updated_at",
    },
    "llm_calls": {
        "id",
        "run_id",
        "chunk_id",
        "task",
        "provider",
        "model",
        "mode",
        "prompt_version",
        "request_hash",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "latency_ms",
        "attempts",
        "cache_hit",
        "outcome",
        "error",
        "rejections",
        "created_at",
    },
    "contrast_lines": {
        "id",
        "capability_id",
        "status",
        "text",
        "model_text",
        "citations",
        "counterparts",
        "input_hash",
        "provider",
        "model",
        "prompt_version",
        "rejections",
        "edited",
        "call_id",
        "created_at",
        "reviewed_by",
        "reviewed_at",
        "note",
    },
    "contrast_batches": {
        "id",
        "batch_id",
        "provider",
        "model",
        "mode",
        "base_url",
        "prompt_version",
        "input_file_id",
        "output_file_id",
        "error_file_id",
        "status",
        "items",
        "answered",
        "refused",
        "created_at",
        "updated_at",
        "collected_at",
    },
    "llm_cache": {"request_hash", "provider", "model", "payload", "created_at", "validated"},
    "llm_answers": {"body_hash", "payload", "created_at"},
    "capabilities": {
        "id",
        "tool_id",
        "key",
        "name",
        "category",
        "description",
        "unique_line",
        "vs_alternatives",
        "status",
        "version",
        "first_run_id",
        "last_run_id",
        "created_at",
        "updated_at",
    },
    "evidence": {
        "id",
        "capability_id",
        "document_id",
        "chunk_id",
        "quote",
        "start",
        "end",
        "score",
        "grounded",
        "run_id",
    },
    "profile_facts": {
        "id",
        "tool_id",
        "field",
        "value",
        "quote",
        "document_id",
        "start",
        "end",
        "grounded",
        "run_id",
    },
    "review_events": {
        "id",
        "capability_id",
        "action",
        "actor",
        "system",
        "edited",
        "from_status",
        "to_status",
        "version",
        "changes",
        "note",
        "run_id",
        "proposal_id",
        "created_at",
    },
    "capability_proposals": {
        "id",
        "capability_id",
        "run_id",
        "kind",
        "changes",
        "previous_status",
        "state",
        "created_at",
        "resolved_at",
        "resolved_by",
    },
    "capability_baselines": {"capability_id", "fields", "run_id", "updated_at"},
    "embeddings": {"model", "content_hash", "dims", "vector", "created_at"},
    "search_queries": {"id", "text", "created_at"},
    "search_query_counts": {"query_id", "day", "count"},
    "match_runs": {
        "id",
        "model",
        "top_k",
        "threshold",
        "queries",
        "capabilities",
        "edges",
        "digest",
        "status",
        "error",
        "started_at",
        "finished_at",
    },
    "match_edges": {"run_id", "query_id", "rank", "capability_id", "tool_id", "score"},
    "batches": {
        "id",
        "batch_id",
        "run_id",
        "provider",
        "model",
        "input_file_id",
        "output_file_id",
        "error_file_id",
        "status",
        "requests",
        "succeeded",
        "requeued",
        "error",
        "created_at",
        "updated_at",
        "collected_at",
    },
    "catalogue_entries": {
        "tool_id",
        "categories",
        "pricing_model",
        "free_tier",
        "price_amount",
        "price_currency",
        "price_unit",
        "signals",
        "source",
        "content_hash",
        "imported_at",
        "revision",
    },
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'schema.db'}"
        return
    yield request.getfixturevalue("pg_url")


def test_upgrade_from_empty_gives_expected_schema(database_url):
    store = open_store(database_url)
    inspector = inspect(store.engine)
    tables = set(inspector.get_table_names()) - {"alembic_version"}
    assert tables == set(EXPECTED)
    for table, columns in EXPECTED.items():
        assert {c["name"] for c in inspector.get_columns(table)} == columns, table
    store.dispose()


def test_downgrade_to_base_and_back(database_url):
    open_store(database_url).dispose()
    command.downgrade(alembic_config(database_url), "base")
    engine = create_engine(database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    store = open_store(database_url)
    assert "capabilities" in inspect(store.engine).get_table_names()
    store.dispose()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'wal.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    store.dispose()


def test_unreachable_database_is_a_clear_error():
    from decomposer.core.errors import StoreError

    with pytest.raises(StoreError, match="cannot open the database"):
        open_store("sqlite:////proc/nonexistent/dir/x.db")
