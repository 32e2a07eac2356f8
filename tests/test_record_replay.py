"""``extract --record DIR`` saves the provider's answers (never keys or headers) for
``--replay DIR``; a replay miss names the document that has no recording."""

from __future__ import annotations

import json
from pathlib import Path

import respx

from conftest import DOC, GOOD, MISTRAL_URL, ok

CANARY = "canary-key-7f3a9c21d0"


def ingest(cli, folder: Path) -> None:
    assert cli("tool", "add", "AcmeDB", "--type", "API", "--exist-ok")[0] == 0
    code, _, err = cli("ingest", "acmedb", str(folder))
    assert code == 0, err


def test_record_then_replay_offline_then_a_miss_names_the_document(cli, tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "acme.md").write_text(DOC)
    recordings = tmp_path / "recordings"
    monkeypatch.setenv("MISTRAL_API_KEY", CANARY)
    ingest(cli, docs)
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(GOOD))
        code, _, err = cli("extract", "acmedb", "--record", str(recordings))
    assert code == 0, err
    assert route.call_count == 1
    assert route.calls.last.request.headers["authorization"] == f"Bearer {CANARY}"
    saved = (recordings / "acmedb.json").read_text("utf-8")
    assert CANARY not in saved and "authorization" not in saved.lower()
    assert "Bearer" not in saved
    [interaction] = json.loads(saved)["interactions"]
    assert '<document source="acme.md"' in interaction["match"]
    recorded = cli.json("capabilities", "acmedb")

    # A fresh store, no key, no network: the recording answers.
    monkeypatch.delenv("MISTRAL_API_KEY")
    monkeypatch.setenv("DECOMPOSER_HOME", str(tmp_path / "offline"))
    ingest(cli, docs)
    with respx.mock() as mock:  # any real request would fail: nothing is routed
        code, _, err = cli("extract", "acmedb", "--replay", str(recordings))
        assert not mock.calls
    assert code == 0, err
    assert [c["name"] for c in cli.json("capabilities", "acmedb")] == [c["name"] for c in recorded]

    # New material that was never recorded: one line naming it.
    (docs / "backups.md").write_text("# Backups\n\nNightly backups are kept for 30 days.\n")
    monkeypatch.setenv("DECOMPOSER_HOME", str(tmp_path / "third"))
    ingest(cli, docs)
    code, _, err = cli("extract", "acmedb", "--replay", str(recordings))
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(
        f"error: no recording in {recordings} answers document 'backups.md § Backups'"
    )
    assert "--record DIR" in err


def test_record_refuses_other_modes(cli, tmp_path):
    code, _, err = cli("extract", "x", "--record", str(tmp_path), "--replay", str(tmp_path))
    assert code == 1 and "--record works only for inline runs" in err
