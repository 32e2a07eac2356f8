"""Evidence after a re-ingest changed its document: offsets follow the quote to the new text or
are cleared, so no view highlights text the capability never quoted (issue 10, Data)."""

from __future__ import annotations

import respx

from conftest import DOC, GOOD, MISTRAL_URL, capability, ok
from decomposer.ingest.reground import locate
from decomposer.store.models import Document, Evidence
from decomposer.views.review import capability_detail, document_view
from test_review import extract_tool
from test_web import login, make_client

OLD = "AcmeDB supports point-in-time recovery to any second within 35 days."
NEW = "AcmeDB keeps nightly snapshots for a week and restores them when you ask."
REPLICATION = "replicates synchronously across three zones"


def marks(store, doc_id: int, cap_id: str | None) -> list[str]:
    with store.transaction() as session:
        view = document_view(session, doc_id, cap_id)
        assert view is not None
        return [p.text for p in view.pieces if p.mark is not None]


def test_reingest_moves_or_clears_offsets_and_a_vanished_capability_highlights_nothing(
    cli, tmp_path, monkeypatch, store, settings
):
    ids = extract_tool(cli, tmp_path, monkeypatch)
    pitr, repl = ids["Point-in-time recovery"], ids["Synchronous replication"]
    with store.transaction() as session:
        doc_id = session.query(Document).one().id
    assert marks(store, doc_id, pitr) == ["point-in-time recovery to any second within 35 days"]

    # the quote is gone and unrelated text now sits at its old offsets; replication moved on
    changed = "Intro paragraph added.\n\n" + DOC.replace(OLD, NEW)
    (tmp_path / "acme-docs" / "acme.md").write_text(changed)
    code, out, _ = cli("ingest", "acmedb", str(tmp_path / "acme-docs"))
    assert code == 0 and "1 evidence quote(s) are not in the new text" in out

    assert marks(store, doc_id, pitr) == []
    assert marks(store, doc_id, repl) == [REPLICATION]
    with store.transaction() as session:
        detail = capability_detail(session, pitr)
        (ev,) = detail.evidence
        assert (ev.start, ev.end, ev.context, ev.document_id) == (None, None, None, doc_id)
        moved = session.query(Evidence).filter_by(capability_id=repl).one()
        text = session.get(Document, doc_id).text
        assert text[moved.start : moved.end] == REPLICATION

    # a re-extraction that no longer finds it leaves it vanished, still highlighting nothing
    only_repl = {**GOOD, "capabilities": GOOD["capabilities"][1:]}
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=ok(only_repl))
        assert cli("extract", "acmedb")[0] == 0
    statuses = {c["id"]: c["status"] for c in cli.json("capabilities", "acmedb")}
    assert statuses[pitr] == "vanished"
    assert marks(store, doc_id, pitr) == []
    assert NEW not in "".join(marks(store, doc_id, None))

    client = make_client(settings, store)
    login(client)
    page = client.get(f"/capabilities/{pitr}").text
    assert "Not in the current version of" in page and NEW not in page


def test_locate_prefers_the_occurrence_nearest_the_old_place():
    text = "abc xyz abc xyz abc"
    assert locate("abc", text, 9) == 8
    assert locate("abc", text, 0) == 0
    assert locate("abc", text, 17) == 16
    assert locate("nope", text, 0) is None
    assert locate("", text, 0) is None


def test_offsets_that_do_not_hold_the_quote_are_never_highlighted(
    cli, tmp_path, monkeypatch, store, settings
):
    """Offsets already stale before re-grounding existed (or written by any other path)."""
    ids = extract_tool(cli, tmp_path, monkeypatch)
    pitr, repl = ids["Point-in-time recovery"], ids["Synchronous replication"]
    with store.transaction() as session:
        doc = session.query(Document).one()
        evidence = session.query(Evidence).filter_by(capability_id=pitr).one()
        other = session.query(Evidence).filter_by(capability_id=repl).one()
        evidence.start, evidence.end = other.start, other.end  # somebody else's text
        doc_id = doc.id
    assert marks(store, doc_id, pitr) == []
    assert marks(store, doc_id, repl) == [REPLICATION]
    with store.transaction() as session:
        (ev,) = capability_detail(session, pitr).evidence
        assert ev.context is None and ev.start is None
        assert [e.context is not None for e in capability_detail(session, repl).evidence] == [True]


def test_every_demo_quote_found_by_grounding_is_still_highlighted(cli):
    """The guard must not hide real evidence: every grounded demo quote, fuzzy ones included."""
    from conftest import REPO

    recordings = str(REPO / "fixtures" / "recordings")
    for slug, name in (("mistral-api", "Mistral API"), ("llama-4", "Llama 4")):
        assert cli("tool", "add", name)[0] == 0
        assert cli("ingest", slug, str(REPO / "fixtures" / "docs" / slug))[0] == 0
        assert cli("extract", slug, "--replay", recordings)[0] == 0
    from decomposer.core.config import Settings
    from decomposer.store import open_store
    from decomposer.views.review import spans_quote

    store = open_store(Settings.from_env().database_url)
    with store.transaction() as session:
        placed = session.query(Evidence).filter(Evidence.start.is_not(None)).all()
        assert len(placed) > 30
        assert all(spans_quote(e.document.text, e) for e in placed)
    store.dispose()


def test_a_fuzzy_grounded_quote_is_still_highlighted(cli, tmp_path, monkeypatch, store):
    typo = "Unlike PostgreSQL, AcmeDB replicates synchronusly accross three zones by default"
    payload = {**GOOD, "capabilities": [capability("Synchronous replication", typo)]}
    ids = extract_tool(cli, tmp_path, monkeypatch, payload)
    with store.transaction() as session:
        ev = session.query(Evidence).one()
        assert ev.start is not None and ev.score is not None and ev.score < 100
        doc_id = ev.document_id
    assert marks(store, doc_id, ids["Synchronous replication"]) == [
        "Unlike PostgreSQL, AcmeDB replicates synchronously across three zones by default"
    ]
