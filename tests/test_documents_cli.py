"""``doc list``, ``doc remove``, ``ingest --prune`` and ``tool remove``: removed documents'
capabilities are flagged vanished (reviewed ones keep their history), never deleted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import CLI, REPO

RECORDINGS = REPO / "fixtures" / "recordings"


@pytest.fixture
def llama(capsys, tmp_path, monkeypatch) -> tuple[CLI, Path]:
    """Llama 4's demo docs copied to a folder we can change, ingested and extracted offline."""
    monkeypatch.setenv("DECOMPOSER_REVIEWER", "tester")
    folder = tmp_path / "llama-4"
    shutil.copytree(REPO / "fixtures" / "docs" / "llama-4", folder)
    cli = CLI(capsys)
    assert cli("tool", "add", "Llama 4", "--type", "Model")[0] == 0
    assert cli("ingest", "llama-4", str(folder))[0] == 0
    assert cli("extract", "llama-4", "--replay", str(RECORDINGS))[0] == 0
    return cli, folder


def backed_only_by(cli: CLI, source: str) -> list[dict]:
    caps = cli.json("capabilities", "llama-4")
    return [c for c in caps if {e["document"] for e in c["evidence"]} == {source}]


def test_doc_list_as_table_json_and_ndjson(llama):
    cli, folder = llama
    docs = cli.json("doc", "list", "llama-4")
    assert [d["key"] for d in docs] == sorted(f"llama-4/{p.name}" for p in folder.iterdir())
    assert all(d["chunks"] >= 1 and d["source"].startswith(str(folder)) for d in docs)
    code, out, _ = cli("doc", "list", "llama-4", "--nl")
    assert code == 0 and len(out.splitlines()) == len(docs)
    code, out, _ = cli("doc", "list", "llama-4")
    assert code == 0 and docs[0]["key"] in out


def test_ingest_prune_flags_capabilities_vanished_and_keeps_history(llama):
    cli, folder = llama
    docs = cli.json("doc", "list", "llama-4")
    victim = next(d for d in docs if backed_only_by(cli, d["source"]))
    only_there = backed_only_by(cli, victim["source"])
    approved = only_there[0]["id"]
    assert cli("approve", approved)[0] == 0
    (folder / Path(victim["key"]).name).unlink()

    report = cli.json("ingest", "llama-4", str(folder), "--prune")
    assert report["pruned"]["removed"] == [{"id": victim["id"], "key": victim["key"]}]
    assert sorted(report["pruned"]["vanished"]) == sorted(c["id"] for c in only_there)
    assert [d["key"] for d in cli.json("doc", "list", "llama-4")] == [
        d["key"] for d in docs if d["id"] != victim["id"]
    ]
    statuses = {c["id"]: c["status"] for c in cli.json("capabilities", "llama-4")}
    assert all(statuses[c["id"]] == "vanished" for c in only_there)  # kept, not deleted
    assert sum(s != "vanished" for s in statuses.values()) > 0
    actions = [e["action"] for e in cli.json("history", approved)]
    assert actions[-2:] == ["approve", "vanished"]

    code, out, _ = cli("ingest", "llama-4", str(folder), "--prune")
    assert code == 0 and "0 documents removed; 0 capabilities flagged vanished" in out


def test_doc_remove_by_key_or_id_and_unknown(llama):
    cli, _ = llama
    docs = cli.json("doc", "list", "llama-4")
    result = cli.json("doc", "remove", "llama-4", docs[0]["key"], str(docs[1]["id"]))
    assert result["action"] == "doc remove"
    assert [d["id"] for d in result["removed"]] == [docs[0]["id"], docs[1]["id"]]
    code, _, err = cli("doc", "remove", "llama-4", "nope.md")
    assert code == 1 and err.startswith("error: llama-4 has no document 'nope.md'")


def test_tool_remove_guards_reviewed_work(llama):
    cli, _ = llama
    [first, *_] = cli.json("capabilities", "llama-4")
    assert cli("approve", first["id"])[0] == 0
    code, _, err = cli("tool", "remove", "llama-4")
    assert code == 1 and "1 reviewed capabilities" in err and "--force" in err
    assert [t["slug"] for t in cli.json("tools")] == ["llama-4"]
    result = cli.json("tool", "remove", "llama-4", "--force")
    assert result["action"] == "tool remove" and result["documents"] == 3
    assert cli.json("tools") == []
    assert cli.json("runs") == []


def test_reingest_reports_a_missing_file_and_flags_only_its_capabilities_vanished(llama):
    cli, folder = llama
    docs = cli.json("doc", "list", "llama-4")
    victim = next(d for d in docs if backed_only_by(cli, d["source"]))
    only_there = backed_only_by(cli, victim["source"])
    approved = only_there[0]["id"]
    assert cli("approve", approved)[0] == 0
    path = folder / Path(victim["key"]).name
    kept_text = path.read_text()
    path.unlink()

    code, out, _ = cli("ingest", "llama-4", str(folder))
    assert code == 0
    assert f"missing: {victim['key']} (its file is gone; the document is kept)" in out
    assert f"1 documents missing; {len(only_there)} capabilities flagged vanished" in out
    statuses = {c["id"]: c["status"] for c in cli.json("capabilities", "llama-4")}
    assert all(statuses[c["id"]] == "vanished" for c in only_there)
    assert sum(s != "vanished" for s in statuses.values()) > 0
    approved_now = cli.json("capabilities", "llama-4", "--status", "approved")
    assert approved not in {c["id"] for c in approved_now}
    assert [e["action"] for e in cli.json("history", approved)][-2:] == ["approve", "vanished"]
    listed = {d["key"]: d for d in cli.json("doc", "list", "llama-4")}
    assert set(listed) == {d["key"] for d in docs}  # the row and its history stay
    assert listed[victim["key"]]["missing_since"] is not None

    again = cli.json("ingest", "llama-4", str(folder))
    assert again["missing"] == [victim["key"]] and again["vanished"] == []

    path.write_text(kept_text)
    code, out, _ = cli("ingest", "llama-4", str(folder))
    assert code == 0 and f"{victim['key']}: found again" in out and "missing:" not in out
    assert all(d["missing_since"] is None for d in cli.json("doc", "list", "llama-4"))


def test_a_missing_documents_chunks_are_left_out_of_extraction(llama, store, settings):
    from decomposer.extraction.inputs import chunks_of
    from decomposer.store.tools import get_tool
    from decomposer.views.review import document_view
    from test_web import login, make_client

    cli, folder = llama
    victim = cli.json("doc", "list", "llama-4")[0]
    (folder / Path(victim["key"]).name).unlink()
    assert cli("ingest", "llama-4", str(folder))[0] == 0
    with store.transaction() as session:
        sources = {source for _, source in chunks_of(session, get_tool(session, "llama-4").id)}
    assert victim["source"] not in sources and sources
    with store.transaction() as session:
        view = document_view(session, victim["id"], None)
        assert view is not None and view.missing_since is not None
    client = make_client(settings, store)
    login(client)
    page = client.get(f"/documents/{victim['id']}")
    assert page.status_code == 200 and "Its file was gone from its folder" in page.text


def test_python_api_ingest_with_the_vanish_missing_hook(llama, store):
    import decomposer as dc

    cli, folder = llama
    victim = next(d for d in cli.json("doc", "list", "llama-4") if backed_only_by(cli, d["source"]))
    only_there = {c["id"] for c in backed_only_by(cli, victim["source"])}
    (folder / Path(victim["key"]).name).unlink()
    report = dc.ingest_sources(
        store, "llama-4", [str(folder)], now=dc.utcnow(), on_missing=dc.vanish_missing
    )
    assert report.missing == [victim["key"]] and set(report.vanished) == only_there
