"""The CLI end to end: commands run, then the rows they wrote are checked. Providers via respx."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import MetaData, create_engine, select

from conftest import (
    BAD_QUOTE,
    DOC,
    GOOD,
    MISTRAL_URL,
    PROFILE_NONE,
    SECRET,
    capability,
    completion,
    ok,
)
from decomposer.core.config import Settings
from decomposer.store import open_store
from decomposer.store.models import Capability, Document, ExtractionRun


@pytest.fixture
def acme(cli, tmp_path) -> Path:
    folder = tmp_path / "acme-docs"
    folder.mkdir()
    (folder / "acme.md").write_text(DOC)
    assert cli("tool", "add", "AcmeDB", "--type", "API")[0] == 0
    code, _, err = cli("ingest", "acmedb", str(folder))
    assert code == 0, err
    return folder


def snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a failed command changed nothing."""
    engine = create_engine(settings.database_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        rows = {
            t.name: sorted(map(tuple, conn.execute(t.select())), key=repr)
            for t in meta.sorted_tables
        }
    engine.dispose()
    return rows


def test_tool_add_and_list(cli):
    assert cli("tool", "add", "Mistral API", "--type", "API")[0] == 0
    assert cli("tool", "add", "Llama 4", "--type", "Model", "--vendor", "Meta")[0] == 0
    tools = cli.json("tools")
    assert [(t["slug"], t["name"], t["type"]) for t in tools] == [
        ("llama-4", "Llama 4", "Model"),
        ("mistral-api", "Mistral API", "API"),
    ]
    code, _, err = cli("tool", "add", "Mistral API")
    assert code == 1 and err == "error: tool 'mistral-api' already exists\n"
    assert cli("tool", "add", "Mistral API", "--exist-ok")[0] == 0


def test_ingest_is_a_noop_when_unchanged_and_replaces_chunks_when_changed(cli, acme, settings):
    code, out, _ = cli("ingest", "acmedb", str(acme))
    assert code == 0 and "unchanged (no-op)" in out and "0 chunks written" in out
    (acme / "acme.md").write_text(DOC + "\n## Backups\n\nNightly backups are kept.\n")
    code, out, _ = cli("ingest", "acmedb", str(acme))
    assert code == 0 and "updated:" in out
    store = open_store(settings.database_url)
    with store.transaction() as s:
        [doc] = s.scalars(select(Document))
        assert "Nightly backups" in doc.text
        assert "".join(c.text for c in doc.chunks) == doc.text
        assert doc.title == "AcmeDB" and len(doc.content_hash) == 64
    store.dispose()


BAD_INPUTS: dict[str, list[str]] = {
    "missing path": ["ingest", "acmedb", "{tmp}/nope.md"],
    "empty file": ["ingest", "acmedb", "{tmp}/empty.md"],
    "binary file": ["ingest", "acmedb", "{tmp}/binary.md"],
    "non-utf8": ["ingest", "acmedb", "{tmp}/latin1.md"],
    "unsupported extension": ["ingest", "acmedb", "{tmp}/data.pdf"],
    "unknown tool (ingest)": ["ingest", "nosuch", "{tmp}/empty.md"],
    "unknown tool (extract)": ["extract", "nosuch"],
    "no api key": ["extract", "acmedb"],
    "no openai api key": ["extract", "acmedb", "--provider", "openai"],
    "malformed base url": [
        "extract",
        "acmedb",
        "--provider",
        "openai-compatible",
        "--model",
        "m",
        "--base-url",
        "not a url",
    ],
    "compatible without url": [
        "extract",
        "acmedb",
        "--provider",
        "openai-compatible",
        "--model",
        "m",
    ],
    "unknown provider": ["extract", "acmedb", "--provider", "anthropic"],
    "unknown mode": ["extract", "acmedb", "--mode", "xml"],
    "unknown status": ["capabilities", "acmedb", "--status", "maybe"],
    "bad tool type": ["tool", "add", "Foo", "--type", "Gadget"],
    "mixed good and bad": ["ingest", "acmedb", "{tmp}/acme-docs", "{tmp}/nope.md"],
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_changes_nothing(cli, acme, settings, tmp_path, case):
    (tmp_path / "empty.md").write_text("")
    (tmp_path / "binary.md").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "latin1.md").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / "data.pdf").write_text("%PDF-1.4")
    (acme / "acme.md").write_text(DOC + "\nChanged, so a good input would write.\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in BAD_INPUTS[case]]
    before = snapshot(settings)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route()
        code, out, err = cli(*args)
    assert route.call_count == 0
    assert code == 1, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + out
    assert snapshot(settings) == before


def test_extract_stores_grounded_capabilities_with_spans(cli, acme, settings, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        code, _, err = cli("extract", "acmedb")
    assert code == 0, err
    caps = cli.json("capabilities", "acmedb")
    assert {c["name"] for c in caps} == {"Point-in-time recovery", "Synchronous replication"}
    for cap in caps:
        assert set(cap) >= {
            "id",
            "name",
            "category",
            "description",
            "unique",
            "vs_alternatives",
            "status",
            "evidence",
        }
        assert cap["status"] == "proposed"
        for ev in cap["evidence"]:
            assert ev["document"] == str((acme / "acme.md").resolve())
            assert DOC[ev["start"] : ev["end"]] == ev["quote"]
    [run] = cli.json("runs")
    assert (run["status"], run["calls"], run["cache_hits"]) == ("succeeded", 1, 0)
    assert (run["input_tokens"], run["output_tokens"]) == (300, 100)
    assert run["cost_usd"] == pytest.approx((300 * 0.1 + 100 * 0.3) / 1e6)
    assert run["prompt"] == "extract/v1" and run["provider"] == "mistral"
    store = open_store(settings.database_url)
    with store.transaction() as s:
        rows = {
            (f.field, json.dumps(f.value), f.grounded)
            for f in s.scalars(
                select(__import__("decomposer.store.models").store.models.ProfileFact)
            )
        }
    store.dispose()
    assert ("free_tier", "true", True) in rows
    assert ("pricing_model", '"freemium"', True) in rows


def test_identical_rerun_makes_no_http_calls(cli, acme, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        assert cli("extract", "acmedb")[0] == 0
    first = cli.json("capabilities", "acmedb")
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route()
        code, _, err = cli("extract", "acmedb")
    assert code == 0, err
    assert route.call_count == 0
    latest = cli.json("runs")[0]
    assert (latest["calls"], latest["cache_hits"], latest["cost_usd"]) == (0, 1, 0.0)
    assert cli.json("capabilities", "acmedb") == first


def test_changed_document_reextracts_only_its_new_chunks(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text(DOC)
    (folder / "b.md").write_text("# Other\n\nA separate page about nothing in particular.\n")
    cli("tool", "add", "AcmeDB")
    assert cli("ingest", "acmedb", str(folder), "--chunk-tokens", "60")[0] == 0
    nothing = ok({"capabilities": [], "profile": PROFILE_NONE})
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=nothing)
        assert cli("extract", "acmedb", "--pack-tokens", "60")[0] == 0
        first_calls = route.call_count
    assert first_calls >= 2
    (folder / "a.md").write_text(DOC.replace("1 GB of storage", "2 GB of storage"))
    assert cli("ingest", "acmedb", str(folder), "--chunk-tokens", "60")[0] == 0
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=nothing)
        assert cli("extract", "acmedb", "--pack-tokens", "60")[0] == 0
    assert route.call_count == 1
    assert (
        "2 GB of storage" in json.loads(route.calls.last.request.content)["messages"][1]["content"]
    )


def test_persistent_failure_marks_run_failed_and_writes_nothing(cli, acme, settings, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(
            return_value=httpx.Response(503, headers={"Retry-After": "0"}, json={})
        )
        code, _, err = cli("extract", "acmedb", "--max-attempts", "2")
    assert code == 1
    assert err == (
        "error: mistral request to api.mistral.ai/v1/chat/completions failed after 2 attempt(s): "
        "HTTP 503 — the provider "
        "may be down; re-run later — finished calls are cached and not re-billed\n"
    )
    [run] = cli.json("runs")
    assert run["status"] == "failed" and "HTTP 503" in run["error"]
    assert cli.json("capabilities", "acmedb") == []


def test_failure_after_some_chunks_leaves_no_half_written_capability(
    cli, tmp_path, settings, monkeypatch
):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text(DOC)
    (folder / "b.md").write_text("# B\n\nAnother page.\n")
    cli("tool", "add", "AcmeDB")
    cli("ingest", "acmedb", str(folder))
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(side_effect=[ok(GOOD), httpx.Response(400, json={})])
        code, _, err = cli("extract", "acmedb", "--concurrency", "1", "--pack-tokens", "1")
    assert code == 1 and "HTTP 400" in err
    store = open_store(settings.database_url)
    with store.transaction() as s:
        assert s.scalars(select(Capability)).all() == []
        assert [r.status for r in s.scalars(select(ExtractionRun))] == ["failed"]
    store.dispose()


def test_ungrounded_after_reasks_is_stored_flagged(cli, acme, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(BAD_QUOTE))
        assert cli("extract", "acmedb")[0] == 0
    assert route.call_count == 3
    [cap] = cli.json("capabilities", "acmedb", "--status", "ungrounded")
    assert cap["evidence"] == [
        {
            "quote": "AcmeDB offers 90-day backups",
            "document": None,
            "document_title": None,
            "start": None,
            "end": None,
            "grounded": False,
            "score": None,
        }
    ]
    assert cli.json("capabilities", "acmedb", "--status", "proposed") == []


def test_same_capability_in_two_chunks_becomes_one_record_and_keeps_its_id(
    cli, tmp_path, monkeypatch
):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nAcmeDB supports point-in-time recovery to any second.\n")
    (folder / "b.md").write_text("# B\n\nRestores use point-in-time recovery within 35 days.\n")
    cli("tool", "add", "AcmeDB")
    cli("ingest", "acmedb", str(folder))
    none = {"type": None, "pricing_model": None, "starting_price": None, "free_tier": None}

    def answer(name: str, quote: str) -> dict[str, Any]:
        return {"capabilities": [capability(name, quote)], "profile": none}

    a = ok(answer("Point-in-time recovery", "supports point-in-time recovery to any second"))
    b = ok(answer("Point in time recovery", "point-in-time recovery within 35 days"))
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(
            side_effect=lambda request: a if b"# A" in request.content else b
        )
        assert cli("extract", "acmedb", "--pack-tokens", "1")[0] == 0
    [cap] = cli.json("capabilities", "acmedb")
    assert len(cap["evidence"]) == 2
    assert {Path(e["document"]).name for e in cap["evidence"]} == {"a.md", "b.md"}
    renamed = ok(answer("Point-in-time recovery (PITR)", "point-in-time recovery to any second"))
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=renamed)
        assert cli("extract", "acmedb", "--model", "mistral-large-latest")[0] == 0
    [again] = cli.json("capabilities", "acmedb")
    assert again["id"] == cap["id"]


def test_openai_compatible_server_by_base_url(cli, acme):
    with respx.mock() as mock:
        route = mock.post("http://127.0.0.1:8000/v1/chat/completions").mock(
            return_value=ok(GOOD, model="llama-4-scout")
        )
        code, _, err = cli(
            "extract",
            "acmedb",
            "--provider",
            "openai-compatible",
            "--base-url",
            "http://127.0.0.1:8000/v1",
            "--model",
            "llama-4-scout",
        )
    assert code == 0, err
    assert json.loads(route.calls.last.request.content)["model"] == "llama-4-scout"
    [run] = cli.json("runs")
    assert (run["provider"], run["cost_usd"]) == ("openai-compatible", 0.0)


def test_api_key_never_reaches_logs_rows_or_errors(cli, acme, settings, monkeypatch, caplog):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    outputs = []
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(
            side_effect=[
                httpx.Response(401, json={"message": f"invalid key {SECRET}"}),
            ]
        )
        outputs.append(cli("-v", "extract", "acmedb"))
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        outputs.append(cli("-v", "extract", "acmedb"))
    assert outputs[0][0] == 1 and outputs[1][0] == 0
    text = repr(outputs) + caplog.text + repr(snapshot(settings))
    assert SECRET not in text
    assert "llm call provider=mistral" in caplog.text


def test_every_command_has_help(cli):
    import typer

    from decomposer.cli.app import app

    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None)
        names.extend(f"{name} {s}" for s in subs) if subs else names.append(name)
        assert command.help, name
    for name in names:
        code, out, _ = cli(*name.split(), "--help")
        assert code == 0 and "Usage" in out, name


def test_interrupted_run_leaves_no_half_written_capability(cli, tmp_path, settings):
    """Ctrl-C in a real process while the second call hangs: no capability, run interrupted."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text(DOC)
    (folder / "b.md").write_text("# B\n\nAnother page.\n")
    cli("tool", "add", "AcmeDB")
    cli("ingest", "acmedb", str(folder))
    release = threading.Event()

    class Provider(BaseHTTPRequestHandler):
        served = 0

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            Provider.served += 1
            if Provider.served > 1:
                release.wait(30)
                return
            body = json.dumps(completion(GOOD)).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    env = {**os.environ, "DECOMPOSER_HOME": str(settings.home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "decomposer",
            "extract",
            "acmedb",
            "--provider",
            "openai-compatible",
            "--base-url",
            url,
            "--model",
            "m",
            "--concurrency",
            "1",
            "--pack-tokens",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # A hang guard, not a measurement: a loaded 2-core machine can take tens of seconds
        # to start the child and import the SDKs before its second request arrives.
        deadline = time.monotonic() + 180
        while Provider.served < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Provider.served == 2
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "error: interrupted", (out, err)
    store = open_store(settings.database_url)
    with store.transaction() as s:
        assert s.scalars(select(Capability)).all() == []
        assert [r.status for r in s.scalars(select(ExtractionRun))] == ["interrupted"]
    store.dispose()
