"""Output for scripts: ``--json`` on every command that changes something (what it did, with
ids), ``--nl`` (one JSON object a line) on every listing command."""

from __future__ import annotations

import json

import pytest

from conftest import CLI, REPO
from decomposer.cli.app import build

RECORDINGS = REPO / "fixtures" / "recordings"
CHANGING = {
    "tool add",
    "tool import",
    "tool remove",
    "doc remove",
    "ingest",
    "extract",
    "approve",
    "reject",
    "edit",
    "batch collect",
    "match import-queries",
    "match run",
    "regenerate",
}
LISTING = {"tools", "capabilities", "runs", "jobs", "history", "batch list", "doc list"}


def options(path: str) -> set[str]:
    command = build()
    for word in path.split():
        command = command.commands[word]
    return {opt for p in command.params for opt in getattr(p, "opts", [])}


@pytest.mark.parametrize("path", sorted(CHANGING))
def test_changing_commands_have_json(path):
    assert "--json" in options(path)


@pytest.mark.parametrize("path", sorted(LISTING))
def test_listing_commands_have_nl(path):
    assert {"--json", "--nl"} <= options(path)


def ndjson(cli: CLI, *args: str) -> list[dict]:
    code, out, err = cli(*args, "--nl")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_what_each_command_did_as_json_and_lists_as_ndjson(capsys, monkeypatch):
    monkeypatch.setenv("DECOMPOSER_REVIEWER", "tester")
    cli = CLI(capsys)
    added = cli.json("tool", "add", "Mistral API", "--type", "API")
    assert added["action"] == "tool add" and added["result"] == "added"
    assert added["slug"] == "mistral-api" and isinstance(added["id"], int)
    assert cli.json("tool", "add", "Mistral API", "--exist-ok")["result"] == "exists"

    ingested = cli.json("ingest", "mistral-api", str(REPO / "fixtures" / "docs" / "mistral-api"))
    assert ingested["tool"] == "mistral-api" and ingested["added"]
    assert ingested["chunks_written"] > 0

    run = cli.json("extract", "mistral-api", "--replay", str(RECORDINGS))
    assert run["action"] == "extract" and run["status"] == "succeeded"
    assert run["run_id"] == 1 and run["changes"]["created"] == run["capabilities"] > 0

    caps = ndjson(cli, "capabilities", "mistral-api")
    assert len(caps) == run["capabilities"] and all("id" in c for c in caps)
    first, second, third = (c["id"] for c in caps[:3])
    approved = cli.json("approve", first)
    assert approved["action"] == "approved"
    assert [(o["capability_id"], o["status"]) for o in approved["changed"]] == [(first, "approved")]
    assert isinstance(approved["changed"][0]["event_id"], int)
    rejected = cli.json("reject", second, "--note", "no")
    assert rejected["changed"][0]["status"] == "rejected"
    edited = cli.json("edit", third, "--field", "unique", "--value", "Only here.")
    assert edited["changed"][0]["changes"]["unique"][1] == "Only here."
    would = cli.json("approve", "--tool", "mistral-api", "--dry-run")
    assert len(would["would_change"]) == len(caps) - 2

    imported = cli.json("tool", "import", str(REPO / "fixtures" / "catalogue.toml"))
    assert imported["action"] == "tool import" and "mistral-api" in imported["updated"]
    queries = cli.json("match", "import-queries", str(REPO / "fixtures" / "queries.csv"))
    assert queries["queries"] > 0

    assert [t["slug"] for t in ndjson(cli, "tools")] == sorted(["mistral-api", *imported["added"]])
    assert [r["id"] for r in ndjson(cli, "runs")] == [1]
    assert {j["run"] for j in ndjson(cli, "jobs")} == {1}
    assert [e["action"] for e in ndjson(cli, "history", third)][-1] == "edit"
    assert ndjson(cli, "batch", "list") == []


def test_json_and_nl_together_is_a_usage_mistake(cli):
    code, _, err = cli("tools", "--json", "--nl")
    assert code == 2
    assert err == (
        "error: Invalid value: use either --json or --nl, not both "
        "(see 'decomposer tools --help')\n"
    )
