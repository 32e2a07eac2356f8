"""``decomposer export`` / ``import`` / ``backup`` (issue 10, Data): a store built through the CLI
round-trips through JSON Lines into an empty store byte for byte, with the same pages; ``--tool``
keeps only those tools' rows; a bad file is one line naming its line and writes nothing."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from conftest import CLI, REPO, SECRET
from decomposer.cli.app import main
from decomposer.core.errors import InputError
from decomposer.store import open_store
from decomposer.store.models import Base
from decomposer.store.transfer import EXCLUDED, parse, tables
from test_review import extract_tool

RECORDINGS = str(REPO / "fixtures" / "recordings")
BUILD = [
    ("tool", "add", "Mistral API", "--type", "API", "--vendor", "Mistral AI"),
    ("tool", "add", "Llama 4", "--type", "Model", "--vendor", "Meta"),
    ("ingest", "mistral-api", str(REPO / "fixtures/docs/mistral-api")),
    ("ingest", "llama-4", str(REPO / "fixtures/docs/llama-4")),
    ("extract", "mistral-api", "--replay", RECORDINGS),
    ("extract", "llama-4", "--replay", RECORDINGS),
    ("approve", "--tool", "mistral-api", "--reviewer", "me", "--where", "category!=pricing"),
    ("approve", "--tool", "llama-4", "--reviewer", "me"),
    ("reject", "cap_052056cffb46e7dd", "--note", "licence terms", "--reviewer", "me"),
    ("edit", "cap_6d8ddde37a2d07e5", "--field", "unique", "--value", "Long.", "--reviewer", "me"),
    ("doc", "remove", "llama-4", "llama-4/download-and-license.md"),  # vanished proposals
    ("tool", "import", str(REPO / "fixtures/catalogue.toml")),
    ("match", "import-queries", str(REPO / "fixtures/queries.csv")),
    ("match", "run"),
]


def run(home: Path, *args: str) -> int:
    return main(["--home", str(home), *args])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """A store made through the CLI (ingest, replayed extraction, reviews, catalogue, match
    graph) and its export."""
    root = tmp_path_factory.mktemp("built")
    home = root / "a"
    for args in BUILD:
        assert run(home, *args) == 0, args
    assert run(home, "export", str(root / "a.jsonl")) == 0
    return home, root / "a.jsonl"


def pages(home: Path, out: Path) -> dict[str, str]:
    assert run(home, "regenerate", "--out-dir", str(out), "--all") == 0
    return {p.name: p.read_text() for p in sorted(out.iterdir()) if p.is_file()}


def kinds(path: Path) -> list[dict]:
    """The header, then each row with its kind."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [lines[0], *({**x["row"], "kind": x["kind"]} for x in lines[1:])]


def test_round_trip_is_identical_and_gives_the_same_pages(built, tmp_path):
    home, first = built
    assert run(tmp_path / "b", "import", str(first)) == 0
    assert run(tmp_path / "b", "export", str(tmp_path / "b.jsonl")) == 0
    assert (tmp_path / "b.jsonl").read_bytes() == first.read_bytes()

    rows = kinds(first)
    assert rows[0]["kind"] == "header" and rows[0]["format"] == 1 and rows[0]["revision"]
    present = {r["kind"] for r in rows[1:]}
    for table in (
        "tools",
        "documents",
        "chunks",
        "capabilities",
        "evidence",
        "review_events",
        "capability_proposals",
        "extraction_runs",
        "jobs",
        "llm_calls",
        "llm_cache",
        "catalogue_entries",
        "search_queries",
        "match_runs",
        "match_edges",
    ):
        assert table in present, table
    assert any(r["kind"] == "documents" and r["text"] for r in rows)

    a, b = pages(home, tmp_path / "pa"), pages(tmp_path / "b", tmp_path / "pb")
    assert a and a == b


def test_import_refuses_a_store_that_is_not_empty(built, tmp_path, capsys):
    _, first = built
    assert run(tmp_path / "c", "tool", "add", "Other") == 0
    capsys.readouterr()
    assert run(tmp_path / "c", "import", str(first)) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: the store is not empty (tools has rows)")
        and len([line for line in err.splitlines() if line.startswith("error")]) == 1
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines, n: lines.__setitem__(n, "{not json"), "not valid JSON"),
        (lambda lines, n: lines.__setitem__(n, "[1, 2]"), "expected a JSON object"),
        (lambda lines, n: lines.__setitem__(n, '{"kind": "nope"}'), "unknown kind 'nope'"),
        (
            lambda lines, n: lines.__setitem__(n, lines[n].replace('"id":', '"idd":', 1)),
            "has no column",
        ),
        (
            lambda lines, n: lines.__setitem__(
                n, lines[n].replace('"created_at": "', '"created_at": "x', 1)
            ),
            "created_at",
        ),
        # a row the database refuses (its capability is not in the file): found by line
        (
            lambda lines, n: lines.__setitem__(
                n,
                json.dumps(
                    {
                        "kind": "review_events",
                        "row": {**json.loads(lines[n])["row"], "capability_id": "cap_missing"},
                    }
                ),
            ),
            "cannot restore this",
        ),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_written(built, tmp_path, capsys, damage, message):
    _, first = built
    lines = first.read_text().splitlines()
    kind = (
        "review_events"
        if "restore" in message
        else "tools"
        if "created_at" in message
        else "evidence"
    )
    n = next(i for i, line in enumerate(lines) if json.loads(line)["kind"] == kind)
    n = n + 1 if kind == "evidence" else n
    damage(lines, n)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert run(tmp_path / "d", "import", str(bad)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: line {n + 1}: ") and message in err, err
    assert "Traceback" not in err
    assert run(tmp_path / "d", "import", str(first)) == 0  # nothing was half-written


def test_import_refuses_files_that_are_not_exports(tmp_path, capsys):
    for content, message in [
        (b"", "the file is empty"),
        (b'{"kind": "tools", "id": 1}\n', "line 1: expected the export header first"),
        (b'{"kind": "header", "format": 99}\n', "line 1: export format 99 is not supported"),
        (b'{"kind": "header", "format": 1}\n\xff\xfe\n', "line 2: not UTF-8 text"),
    ]:
        path = tmp_path / "f.jsonl"
        path.write_bytes(content)
        capsys.readouterr()
        assert run(tmp_path / "e", "import", str(path)) == 1
        assert capsys.readouterr().err.startswith(f"error: {message}")
    assert run(tmp_path / "e", "import", str(tmp_path / "none.jsonl")) == 1


def test_tool_export_keeps_only_that_tools_rows(built, tmp_path, capsys):
    home, _ = built
    part = tmp_path / "llama.jsonl"
    assert run(home, "export", "--tool", "llama-4", str(part)) == 0
    rows = kinds(part)
    assert rows[0]["tools"] == ["llama-4"]
    (llama,) = [r for r in rows if r["kind"] == "tools"]
    assert {r["tool_id"] for r in rows if "tool_id" in r} == {llama["id"]}
    caps = {r["id"] for r in rows if r["kind"] == "capabilities"}
    assert caps and all(r["capability_id"] in caps for r in rows if "capability_id" in r)
    runs = {r["id"] for r in rows if r["kind"] == "extraction_runs"}
    assert all(r["run_id"] in runs for r in rows if r["kind"] in ("jobs", "llm_calls"))
    hashes = {r["request_hash"] for r in rows if r["kind"] in ("jobs", "llm_calls")}
    assert {r["request_hash"] for r in rows if r["kind"] == "llm_cache"} <= hashes

    assert run(tmp_path / "f", "import", str(part)) == 0
    cli = CLI(capsys)
    restored = cli.json("--home", str(tmp_path / "f"), "capabilities", "llama-4")
    original = cli.json("--home", str(home), "capabilities", "llama-4")
    assert restored == original
    assert [t["slug"] for t in cli.json("--home", str(tmp_path / "f"), "tools")] == ["llama-4"]
    assert run(home, "export", "--tool", "nope", str(tmp_path / "x.jsonl")) == 1
    assert not (tmp_path / "x.jsonl").exists()


def test_every_table_is_exported_or_excluded_on_purpose(tmp_path):
    exported = {t.name for t in tables()}
    assert exported | set(EXCLUDED) == set(Base.metadata.tables)
    assert not exported & set(EXCLUDED)
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    migrated = set(inspect(store.engine).get_table_names()) - {"alembic_version"}
    store.dispose()
    assert migrated == set(Base.metadata.tables)  # a table only a migration made is caught too


def test_export_holds_no_api_key(cli, tmp_path, monkeypatch):
    extract_tool(cli, tmp_path, monkeypatch)  # extracted with SECRET as MISTRAL_API_KEY
    code, _, err = cli("export", str(tmp_path / "x.jsonl"))
    assert code == 0, err
    assert SECRET not in (tmp_path / "x.jsonl").read_text()


def test_export_to_stdout(cli):
    assert cli("tool", "add", "Solo")[0] == 0
    code, out, err = cli("export", "-")
    assert code == 0 and "exported" in err
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["header", "tools"]


def test_backup_copies_a_live_sqlite_store(built, tmp_path, capsys):
    home, first = built
    live = tmp_path / "live"
    shutil.copytree(home, live)
    copy = tmp_path / "copy.db"
    writer = sqlite3.connect(live / "decomposer.db")  # another process mid-transaction
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE tools SET name = 'uncommitted'")
    try:
        assert run(live, "backup", str(copy)) == 0
    finally:
        writer.rollback()
        writer.close()
    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert "uncommitted" not in {n for (n,) in db.execute("SELECT name FROM tools")}
    capsys.readouterr()
    assert run(live, "backup", str(copy)) == 1
    assert capsys.readouterr().err.startswith(f"error: {copy} exists")
    (tmp_path / "restored").mkdir()
    shutil.copy(copy, tmp_path / "restored" / "decomposer.db")
    assert run(tmp_path / "restored", "export", str(tmp_path / "r.jsonl")) == 0
    assert (tmp_path / "r.jsonl").read_bytes() == first.read_bytes()


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
TABLE = st.sampled_from([t.name for t in tables()] + ["header", "nope", "api_tokens"])


def _row_line(kind: str, values: dict) -> str:
    return json.dumps({"kind": kind, "row": values})


def _column_values(kind: str, data: st.DataObject) -> dict:
    table = Base.metadata.tables.get(kind)
    names = list(table.columns.keys()) if table is not None else ["id"]
    chosen = data.draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True))
    return {
        name: data.draw(JSON_VALUE | st.sampled_from(["2026-12-02T00:00:00", "AAAA"]))
        for name in chosen
    }


LINE = st.one_of(
    st.text(max_size=60),
    st.builds(json.dumps, JSON_VALUE),
    st.just('{"kind": "header", "format": 1}'),
    st.builds(lambda k, v: json.dumps({"kind": k, "row": v}), TABLE, JSON_VALUE),
    st.builds(lambda n: "[" * n, st.integers(1, 100_000)),
)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fuzz_the_import_parser_only_ever_raises_input_error(data):
    lines = data.draw(st.lists(LINE, max_size=6))
    if data.draw(st.booleans()):
        lines.insert(0, '{"kind": "header", "format": 1}')
        kind = data.draw(TABLE)
        lines.append(_row_line(kind, _column_values(kind, data)))
    try:
        parsed = parse(lines)
    except InputError as exc:
        assert str(exc).strip() and "\n" not in str(exc)
        return
    assert parsed.header.get("format") == 1


def test_round_trip_through_postgresql(built, pg_url, tmp_path, monkeypatch, capsys):
    """SQLite -> PostgreSQL -> SQLite gives the first export back; PostgreSQL's id sequences
    continue after the restored ids."""
    _, first = built
    monkeypatch.setenv("DECOMPOSER_DATABASE_URL", pg_url)
    assert main(["import", str(first)]) == 0
    assert main(["export", str(tmp_path / "pg.jsonl")]) == 0
    assert main(["tool", "add", "Added After"]) == 0
    tools = CLI(capsys).json("tools")
    assert len({t["slug"] for t in tools}) == 3
    monkeypatch.delenv("DECOMPOSER_DATABASE_URL")
    assert run(tmp_path / "s", "import", str(tmp_path / "pg.jsonl")) == 0
    assert run(tmp_path / "s", "export", str(tmp_path / "s.jsonl")) == 0
    assert (tmp_path / "s.jsonl").read_bytes() == first.read_bytes()


def test_import_from_stdin(built, tmp_path, monkeypatch):
    _, first = built
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(first.read_bytes())))
    assert run(tmp_path / "g", "import", "-") == 0
    assert run(tmp_path / "g", "export", str(tmp_path / "g.jsonl")) == 0
    assert (tmp_path / "g.jsonl").read_bytes() == first.read_bytes()


def test_export_and_backup_never_overwrite_the_store_or_a_file_unasked(cli, tmp_path, settings):
    assert cli("tool", "add", "Solo")[0] == 0
    db = str(settings.home / "decomposer.db")
    (tmp_path / "taken.jsonl").write_text("keep me")
    for args, message in [
        (("export", db, "--force"), f"error: {db} is the store itself"),
        (("backup", db, "--force"), f"error: {db} is the store itself"),
        (("backup", db + "-wal", "--force"), "is the store itself"),
        (("export", str(tmp_path / "taken.jsonl")), "exists — pass --force to replace it"),
        (("export", str(tmp_path)), "is a folder"),
        (("export", str(tmp_path / "no" / "x.jsonl")), "no such folder"),
        (("backup", str(tmp_path / "no" / "x.db")), "no such folder"),
    ]:
        code, _, err = cli(*args)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert (tmp_path / "taken.jsonl").read_text() == "keep me"
    assert [t["slug"] for t in cli.json("tools")] == ["solo"]
    code, _, err = cli("export", str(tmp_path / "taken.jsonl"), "--force")
    assert code == 0, err


def test_values_round_trip_by_column_type():
    from datetime import datetime

    from decomposer.store.transfer import decode, encode

    cols = Base.metadata.tables
    cases = [
        (cols["profile_facts"].c.value, None),  # JSON null in a NOT NULL JSON column
        (cols["profile_facts"].c.value, {"amount": 0.1, "currency": "USD"}),
        (cols["embeddings"].c.vector, b"\x00\x01\xff"),
        (cols["tools"].c.created_at, datetime(2026, 12, 2, 4, 5, 6, 789)),
        (cols["evidence"].c.score, 91.5),
        (cols["evidence"].c.start, None),
        (cols["llm_cache"].c.validated, False),
    ]
    for column, value in cases:
        assert decode(column, json.loads(json.dumps(encode(column, value)))) == value
    for column, bad in [
        (cols["tools"].c.id, True),
        (cols["tools"].c.id, 2**63),
        (cols["tools"].c.slug, None),
        (cols["tools"].c.created_at, "yesterday"),
        (cols["embeddings"].c.vector, "not base64!"),
        (cols["evidence"].c.score, "1"),
    ]:
        with pytest.raises(ValueError):
            decode(column, bad)
