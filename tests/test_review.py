"""Review model and CLI: state machine, events, versions/conflicts, bulk filters, history,
and the interactive ``decomposer review`` driven through stdin and an $EDITOR script."""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import respx
from sqlalchemy import select

from conftest import CLI, DOC, GOOD, MISTRAL_URL, SECRET, capability, ok
from decomposer.core.clock import utcnow
from decomposer.core.errors import ConflictError, InputError
from decomposer.review.actions import next_status, review, submit
from decomposer.review.queries import Filter, parse_where
from decomposer.store import Store, open_store
from decomposer.store.models import Capability
from decomposer.store.review_models import ReviewEvent

REPO_ROOT = Path(__file__).resolve().parents[1]
THREE = {
    "capabilities": [
        *GOOD["capabilities"],
        capability("Free tier", "A free tier includes 1 GB of storage.", category="pricing"),
    ],
    "profile": GOOD["profile"],
}


def extract_tool(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: dict[str, Any] = THREE
) -> dict[str, str]:
    """Add AcmeDB, ingest DOC, extract ``payload``; return capability ids by name."""
    folder = tmp_path / "acme-docs"
    folder.mkdir(exist_ok=True)
    (folder / "acme.md").write_text(DOC)
    assert cli("tool", "add", "AcmeDB", "--type", "API", "--exist-ok")[0] == 0
    assert cli("ingest", "acmedb", str(folder))[0] == 0
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(payload))
        code, _, err = cli("extract", "acmedb")
    assert code == 0, err
    return {c["name"]: c["id"] for c in cli.json("capabilities", "acmedb")}


@pytest.fixture
def ids(cli, tmp_path, monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("DECOMPOSER_REVIEWER", "alice")
    return extract_tool(cli, tmp_path, monkeypatch)


def cap_row(settings, cap_id: str) -> tuple[Capability, list[ReviewEvent]]:
    store = open_store(settings.database_url)
    with store.transaction() as s:
        cap = s.get(Capability, cap_id)
        assert cap is not None
        events = list(
            s.scalars(
                select(ReviewEvent)
                .where(ReviewEvent.capability_id == cap_id)
                .order_by(ReviewEvent.id)
            )
        )
        s.expunge_all()
    store.dispose()
    return cap, events


# --- state machine ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action", "kw", "expected"),
    [
        ("proposed", "approve", {}, "approved"),
        ("proposed", "reject", {}, "rejected"),
        ("proposed", "edit", {"edits": True}, "proposed"),
        ("approved", "edit", {"edits": True}, "approved"),
        ("approved", "approve", {"edits": True}, "approved"),
        ("approved", "approve", {"proposal": "changed"}, "approved"),
        ("approved", "keep", {"proposal": "changed"}, "approved"),
        ("approved", "reject", {}, "rejected"),
        ("rejected", "approve", {}, "approved"),
        ("rejected", "reject", {"proposal": "changed"}, "rejected"),
        ("ungrounded", "approve", {"note": "checked the pricing page"}, "approved"),
        ("ungrounded", "reject", {}, "rejected"),
        ("vanished", "approve", {"proposal": "vanished"}, "approved"),
        ("vanished", "keep", {"proposal": "vanished", "previous": "approved"}, "approved"),
        ("vanished", "keep", {"proposal": "vanished", "previous": "proposed"}, "proposed"),
        ("vanished", "reject", {"proposal": "vanished"}, "rejected"),
    ],
)
def test_state_machine_allows(status, action, kw, expected):
    assert next_status(status, action, **kw) == expected


@pytest.mark.parametrize(
    ("status", "action", "kw", "message"),
    [
        ("approved", "approve", {}, "already approved"),
        ("rejected", "reject", {}, "already rejected"),
        ("ungrounded", "approve", {}, "ungrounded"),
        ("ungrounded", "approve", {"note": "  "}, "ungrounded"),
        ("proposed", "edit", {}, "nothing to edit"),
        ("proposed", "keep", {}, "no pending re-extraction change"),
        ("proposed", "delete", {}, "unknown action"),
    ],
)
def test_state_machine_refuses(status, action, kw, message):
    with pytest.raises(InputError, match=message):
        next_status(status, action, **kw)


def test_parse_where():
    f = parse_where(
        ["status=proposed|ungrounded", "category!=pricing", "name~Recovery", "grounded=true"],
        Filter(tool="x"),
    )
    assert (f.tool, f.statuses, f.not_category, f.name_contains, f.grounded) == (
        "x",
        ("proposed", "ungrounded"),
        "pricing",
        "Recovery",
        True,
    )
    for bad in ("status=nope", "colour=red", "grounded=maybe", "status~pro", "run=x"):
        with pytest.raises(InputError):
            parse_where([bad])


# --- library: events, versions, conflicts ------------------------------------------------------


def test_every_action_is_an_event_and_bumps_the_version(ids, settings, store: Store):
    cid = ids["Point-in-time recovery"]
    with store.transaction() as s:
        out = review(
            s,
            cid,
            "approve",
            reviewer="bob",
            now=utcnow(),
            expected_version=1,
            changes={"description": "Restore to any second in the last 35 days."},
            note="tightened",
        )
    assert (out.status, out.version) == ("approved", 2)
    cap, events = cap_row(settings, cid)
    assert cap.description == "Restore to any second in the last 35 days."
    created, approved = events
    assert (created.action, created.actor, created.system) == ("created", "extractor", True)
    assert (approved.action, approved.actor, approved.edited, approved.note) == (
        "approve",
        "bob",
        True,
        "tightened",
    )
    assert approved.changes == {
        "description": [
            "Point-in-time recovery as described by the vendor.",
            "Restore to any second in the last 35 days.",
        ],
        "status": ["proposed", "approved"],
    }
    assert (approved.from_status, approved.to_status, approved.version) == (
        "proposed",
        "approved",
        2,
    )


def test_two_reviewers_same_version_second_gets_conflict_and_nothing_is_lost(ids, settings, store):
    cid = ids["Synchronous replication"]
    seen = 1  # both reviewers loaded version 1
    first = submit(
        store,
        cid,
        "edit",
        reviewer="alice",
        now=utcnow,
        expected_version=seen,
        changes={"name": "Synchronous 3-zone replication"},
    )
    assert first.version == 2
    with pytest.raises(ConflictError) as info:
        submit(
            store,
            cid,
            "edit",
            reviewer="bob",
            now=utcnow,
            expected_version=seen,
            changes={"name": "Sync replication"},
            note="shorter",
        )
    err = info.value
    assert "you had version 1, it is now version 2 by alice" in str(err)
    assert err.current == 2
    cap, events = cap_row(settings, cid)
    assert (cap.name, cap.version) == ("Synchronous 3-zone replication", 2)  # alice's edit kept
    conflict = events[-1]
    assert (conflict.action, conflict.actor) == ("conflict", "bob")  # bob's attempt kept
    assert conflict.changes == {"name": ["Synchronous 3-zone replication", "Sync replication"]}
    assert "shorter" in (conflict.note or "")
    # bob reloads (version 2) and succeeds
    assert (
        submit(store, cid, "approve", reviewer="bob", now=utcnow, expected_version=2).version == 3
    )


def test_concurrent_writers_one_wins(ids, settings):
    """Two threads, two stores, the same expected version: exactly one conflict."""
    cid = ids["Point-in-time recovery"]
    results: list[str] = []
    barrier = threading.Barrier(2)

    def act(name: str) -> None:
        s = open_store(settings.database_url)
        barrier.wait()
        try:
            submit(s, cid, "approve", reviewer=name, now=utcnow, expected_version=1)
            results.append("ok")
        except ConflictError:
            results.append("conflict")
        finally:
            s.dispose()

    threads = [threading.Thread(target=act, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict", "ok"]
    cap, _ = cap_row(settings, cid)
    assert (cap.status, cap.version) == ("approved", 2)


# --- scriptable CLI ------------------------------------------------------------------------------


def test_cli_approve_reject_edit_history(cli, ids, settings):
    pitr, sync, free = (
        ids["Point-in-time recovery"],
        ids["Synchronous replication"],
        ids["Free tier"],
    )
    code, out, err = cli("approve", pitr, sync)
    assert code == 0, err
    assert f"approved {pitr}: approved, version 2" in out
    code, out, err = cli("reject", free, "--note", "pricing, not a capability")
    assert code == 0, err
    code, out, err = cli(
        "edit", sync, "--field", "name", "--value", "Sync replication", "--reviewer", "carol"
    )
    assert code == 0 and "edited" in out, err
    cap, events = cap_row(settings, sync)
    assert (cap.name, cap.status, cap.version) == ("Sync replication", "approved", 3)
    assert [(e.action, e.actor) for e in events] == [
        ("created", "extractor"),
        ("approve", "alice"),
        ("edit", "carol"),
    ]
    history = cli.json("history", free)
    assert [h["action"] for h in history] == ["created", "reject"]
    assert history[1]["note"] == "pricing, not a capability"
    assert history[1]["changes"] == {"status": ["proposed", "rejected"]}
    code, out, _ = cli("history", sync)
    assert code == 0 and "carol" in out and "Sync replication" in out


def test_cli_conflict_and_errors_exit_1_and_change_nothing(cli, ids, settings):
    pitr = ids["Point-in-time recovery"]
    assert cli("approve", pitr)[0] == 0
    code, _, err = cli("reject", pitr, "--expect-version", "1")
    assert code == 1
    assert err.startswith("error: capability ") and "it is now version 2" in err
    assert err.count("\n") == 1
    code, _, err = cli("approve", pitr)
    assert code == 1 and "already approved" in err
    code, _, err = cli("approve", "cap_nope")
    assert code == 1 and "unknown capability 'cap_nope'" in err
    code, _, err = cli("edit", pitr, "--field", "colour", "--value", "red")
    assert code == 1 and "unknown field 'colour'" in err
    code, _, err = cli("edit", pitr, "--field", "category", "--value", "nonsense")
    assert code == 1 and "unknown category" in err
    # an unknown id in a list changes nothing for the others
    sync = ids["Synchronous replication"]
    code, _, err = cli("approve", sync, "cap_nope")
    assert code == 1
    assert cap_row(settings, sync)[0].status == "proposed"


def test_cli_refuses_without_a_reviewer(cli, ids, monkeypatch):
    monkeypatch.delenv("DECOMPOSER_REVIEWER")
    code, _, err = cli("approve", ids["Free tier"])
    assert code == 1
    assert err == (
        "error: no reviewer name for the audit trail — pass --reviewer NAME, set "
        "DECOMPOSER_REVIEWER, or add [review] reviewer to config.toml\n"
    )
    assert cli("approve", ids["Free tier"], "--reviewer", "dan")[0] == 0


def test_cli_bulk_approve_with_where_filters(cli, ids, settings):
    code, out, err = cli("approve", "--tool", "acmedb", "--where", "category=pricing", "--dry-run")
    assert code == 0 and "1 capabilities match" in out and "Free tier" in out
    assert cap_row(settings, ids["Free tier"])[0].status == "proposed"
    code, out, err = cli("approve", "--tool", "acmedb", "--where", "category!=pricing")
    assert code == 0, err
    statuses = {c["name"]: c["status"] for c in cli.json("capabilities", "acmedb")}
    assert statuses == {
        "Point-in-time recovery": "approved",
        "Synchronous replication": "approved",
        "Free tier": "proposed",
    }
    code, out, _ = cli("reject", "--tool", "acmedb", "--where", "name~free", "--note", "dup")
    assert code == 0 and "rejected" in out
    code, out, _ = cli("approve", "--tool", "acmedb")  # pending only: nothing left
    assert code == 0 and "nothing matched" in out
    code, _, err = cli("approve", "--tool", "acmedb", "--where", "status=ungrounded")
    assert code == 0
    code, _, err = cli("approve", ids["Free tier"], "--tool", "acmedb")
    assert code == 1 and "not both" in err
    code, _, err = cli("approve", "--tool", "acmedb", "--where", "bogus")
    assert code == 1 and "cannot parse --where" in err


def test_bulk_refuses_ungrounded_without_note_all_or_nothing(cli, tmp_path, monkeypatch, settings):
    monkeypatch.setenv("DECOMPOSER_REVIEWER", "alice")
    payload = {
        "capabilities": [
            *GOOD["capabilities"],
            capability("Made up", "AcmeDB offers 90-day backups"),
        ],
        "profile": GOOD["profile"],
    }
    ids = extract_tool(cli, tmp_path, monkeypatch, payload)
    code, _, err = cli("approve", "--tool", "acmedb")
    assert code == 1 and "ungrounded" in err
    assert {c["status"] for c in cli.json("capabilities", "acmedb")} == {"proposed", "ungrounded"}
    code, _, err = cli("approve", ids["Made up"], "--note", "confirmed with the vendor")
    assert code == 0, err


# --- interactive review --------------------------------------------------------------------------


EDITOR = """\
import sys
path = sys.argv[1]
text = open(path).read()
text = text.replace("Synchronous replication as described by the vendor.",
                    "Writes are acknowledged by three zones.")
open(path, "w").write(text)
"""


def test_interactive_review_keys_editor_and_resume(cli, ids, settings, monkeypatch, tmp_path):
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    # queue order (category, name): Point-in-time recovery, Synchronous replication (platform),
    # then Free tier (pricing).
    order = cli.json("capabilities", "acmedb")
    assert [c["name"] for c in order] == [
        "Point-in-time recovery",
        "Synchronous replication",
        "Free tier",
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("s\nq\n"))
    code, out, _ = cli("review", "acmedb")
    assert code == 0 and "stopped; 0 reviewed" in out
    assert "1/3" in out and "2/3" in out  # skipped the first, quit on the second
    assert "point-in-time recovery to any second within 35 days" in out  # evidence in context
    # resume after the last one seen (the second): Free tier, then wrap to the skipped one
    monkeypatch.setattr(sys, "stdin", io.StringIO("r\nnot a feature\na\ne\n"))
    code, out, _ = cli("review", "acmedb")
    assert code == 0, out
    assert out.index("Free tier") < out.index("Point-in-time") < out.index("Synchronous")
    assert "end of the queue; 3 reviewed" in out
    sync, events = cap_row(settings, ids["Synchronous replication"])
    assert sync.status == "approved"
    assert sync.description == "Writes are acknowledged by three zones."
    assert events[-1].edited and events[-1].actor == "alice"
    free, events = cap_row(settings, ids["Free tier"])
    assert (free.status, events[-1].note) == ("rejected", "not a feature")
    assert cap_row(settings, ids["Point-in-time recovery"])[0].status == "approved"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, _ = cli("review", "acmedb")
    assert code == 0 and "nothing to review" in out


def test_interactive_review_eof_quits_and_unknown_key_reprompts(cli, ids, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\n"))
    code, out, _ = cli("review", "acmedb", "--restart")
    assert code == 0 and "unknown key 'x'" in out and "stopped; 0 reviewed" in out


def test_editor_text_round_trip():
    from decomposer.cli.interactive import editor_text, parse_editor_text

    fields = {
        "name": "N",
        "category": "platform",
        "description": "line one\nline two",
        "unique": "U",
        "vs_alternatives": "V",
    }
    assert parse_editor_text(editor_text("cap_x", fields)) == fields
    assert parse_editor_text("# only comments\n") is None
    with pytest.raises(InputError):
        parse_editor_text("[colour]\nred\n")
