"""Evidence after a re-ingest changed its document: offsets follow the quote to the new text or
are cleared, so no view highlights text the capability never quoted (issue 10, Data)."""

from __future__ import annotations

import respx

from conftest import DOC, GOOD, MISTRAL_URL, ok
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
