"""Re-extraction diffs: human edits survive, changes become proposals, vanished ones are flagged."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import respx
from sqlalchemy import select

from conftest import CLI, DOC, MISTRAL_URL, ok
from decomposer.review.diff import proposed_changes, word_diff
from decomposer.store import open_store
from decomposer.store.review_models import CapabilityProposal
from test_review import THREE, cap_row, extract_tool

NEW_DOC = DOC + "\n## Backups\n\nNightly backups are kept for 7 days.\n"


def second_run(cli: CLI, tmp_path: Path, payload: dict[str, Any]) -> str:
    (tmp_path / "acme-docs" / "acme.md").write_text(NEW_DOC)
    assert cli("ingest", "acmedb", str(tmp_path / "acme-docs"))[0] == 0
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(payload))
        code, out, err = cli("extract", "acmedb")
    assert code == 0, err
    return out


def proposals(settings, cap_id: str) -> list[CapabilityProposal]:
    store = open_store(settings.database_url)
    with store.transaction() as s:
        rows = list(
            s.scalars(
                select(CapabilityProposal)
                .where(CapabilityProposal.capability_id == cap_id)
                .order_by(CapabilityProposal.id)
            )
        )
        s.expunge_all()
    store.dispose()
    return rows


def test_word_diff_and_proposed_changes():
    assert word_diff("kept for 35 days", "kept for 7 days") == [
        ("=", "kept for "),
        ("-", "35"),
        ("+", "7"),
        ("=", " days"),
    ]
    current = {
        "name": "N (edited)",
        "category": "platform",
        "description": "D",
        "unique": "U",
        "vs_alternatives": "V",
    }
    baseline = {**current, "name": "N"}
    # the model says the same as before: the reviewer's edit stands, nothing proposed
    assert proposed_changes(current, baseline, baseline) == {}
    # the model changed a field the reviewer edited: proposed, old = the reviewer's text
    assert proposed_changes(current, baseline, {**baseline, "name": "N2"}) == {
        "name": {"old": "N (edited)", "new": "N2"}
    }
    # the model changed another field
    assert proposed_changes(current, baseline, {**baseline, "unique": "U2"}) == {
        "unique": {"old": "U", "new": "U2"}
    }


def test_reextraction_keeps_edits_proposes_changes_flags_vanished(
    cli, tmp_path, monkeypatch, settings
):
    monkeypatch.setenv("DECOMPOSER_REVIEWER", "alice")
    ids = extract_tool(cli, tmp_path, monkeypatch)
    pitr, sync, free = (
        ids["Point-in-time recovery"],
        ids["Synchronous replication"],
        ids["Free tier"],
    )
    edited = "Restore to any second of the last 35 days."
    assert cli("edit", pitr, "--field", "description", "--value", edited, "--approve")[0] == 0
    assert cli("approve", sync, free)[0] == 0

    payload = copy.deepcopy(THREE)
    payload["capabilities"] = [c for c in payload["capabilities"] if c["name"] != "Free tier"]
    payload["capabilities"][1]["description"] = "Every write is copied to three zones."
    payload["capabilities"].append(
        {
            "name": "Nightly backups",
            "category": "platform",
            "description": "Backups every night.",
            "unique": "Kept 7 days.",
            "vs_alternatives": "Not stated in the docs.",
            "evidence": ["Nightly backups are kept for 7 days."],
        }
    )
    out = second_run(cli, tmp_path, payload)
    assert "1 new" in out and "1 changes proposed for review" in out
    assert "1 capabilities were not found again and are now vanished" in out

    caps = {c["name"]: c for c in cli.json("capabilities", "acmedb")}
    # approved with edits, model text unchanged: the human edit is kept, no proposal
    assert (
        caps["Point-in-time recovery"]["status"],
        caps["Point-in-time recovery"]["description"],
    ) == (
        "approved",
        edited,
    )
    assert proposals(settings, pitr) == []
    # approved, model text changed: still approved with the old text, a field-level proposal
    assert caps["Synchronous replication"]["status"] == "approved"
    assert caps["Synchronous replication"]["description"] == (
        "Synchronous replication as described by the vendor."
    )
    [p] = proposals(settings, sync)
    assert (p.kind, p.state) == ("changed", "open")
    assert p.changes == {
        "description": {
            "old": "Synchronous replication as described by the vendor.",
            "new": "Every write is copied to three zones.",
        }
    }
    # gone from the docs: flagged vanished with its previous status, for a decision
    assert caps["Free tier"]["status"] == "vanished"
    [v] = proposals(settings, free)
    assert (v.kind, v.previous_status, v.state) == ("vanished", "approved", "open")
    # new: proposed
    assert caps["Nightly backups"]["status"] == "proposed"

    history = cli.json("history", sync)
    assert [h["action"] for h in history] == ["created", "approve", "proposed_change"]
    assert history[-1]["actor"] == "extractor" and history[-1]["system"] is True

    # decisions: apply the change; keep the vanished one
    code, out, err = cli("approve", sync)
    assert code == 0, err
    cap, events = cap_row(settings, sync)
    assert cap.description == "Every write is copied to three zones." and cap.status == "approved"
    assert events[-1].changes["description"][1] == "Every write is copied to three zones."
    assert proposals(settings, sync)[0].state == "accepted"
    assert cli("approve", free, "--keep-current")[0] == 0
    assert cap_row(settings, free)[0].status == "approved"
    assert proposals(settings, free)[0].state == "dismissed"


def test_dismissed_change_is_not_proposed_again_and_rejected_stay_rejected(
    cli, tmp_path, monkeypatch, settings
):
    monkeypatch.setenv("DECOMPOSER_REVIEWER", "alice")
    ids = extract_tool(cli, tmp_path, monkeypatch)
    sync, free = ids["Synchronous replication"], ids["Free tier"]
    assert cli("approve", sync)[0] == 0
    assert cli("reject", free)[0] == 0
    payload = copy.deepcopy(THREE)
    payload["capabilities"] = payload["capabilities"][:2]
    payload["capabilities"][1]["unique"] = "Three zones, synchronously."
    second_run(cli, tmp_path, payload)
    assert cap_row(settings, free)[0].status == "rejected"  # not flagged: nothing to decide
    assert proposals(settings, free) == []
    assert cli("approve", sync, "--keep-current")[0] == 0
    cap, _ = cap_row(settings, sync)
    assert (cap.status, cap.unique) == ("approved", "Synchronous replication is on by default.")
    # the same model output again (every request a cache hit): no new proposal
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(payload))
        assert cli("extract", "acmedb")[0] == 0
    assert not route.called
    assert [p.state for p in proposals(settings, sync)] == ["dismissed"]


def test_unreviewed_records_are_refreshed_in_place_with_an_event(
    cli, tmp_path, monkeypatch, settings
):
    ids = extract_tool(cli, tmp_path, monkeypatch)
    payload = copy.deepcopy(THREE)
    payload["capabilities"][0]["description"] = "Recover to any second."
    second_run(cli, tmp_path, payload)
    cap, events = cap_row(settings, ids["Point-in-time recovery"])
    assert (cap.description, cap.status, cap.version) == ("Recover to any second.", "proposed", 2)
    assert events[-1].action == "updated" and events[-1].changes["description"][1] == (
        "Recover to any second."
    )


def test_renamed_by_reviewer_still_matches_on_reextraction(cli, tmp_path, monkeypatch, settings):
    monkeypatch.setenv("DECOMPOSER_REVIEWER", "alice")
    ids = extract_tool(cli, tmp_path, monkeypatch)
    pitr = ids["Point-in-time recovery"]
    assert cli("edit", pitr, "--field", "name", "--value", "PITR (35 days)", "--approve")[0] == 0
    second_run(cli, tmp_path, THREE)
    caps = {c["name"]: c for c in cli.json("capabilities", "acmedb")}
    assert set(caps) == {"PITR (35 days)", "Synchronous replication", "Free tier"}
    assert caps["PITR (35 days)"]["status"] == "approved"
