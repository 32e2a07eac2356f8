"""Reviewing contrast lines: the CLI (`lines list|show|approve|reject|edit`), the audit trail,
pages showing only approved lines (drafts on a preview, marked model-written, provenance in
JSON), and the web UI in a real browser (both tools' cited quotes side by side)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select, update

from decomposer.store import Store
from decomposer.store.contrast_models import ContrastLine
from decomposer.store.models import Capability
from decomposer.store.review_models import ReviewEvent
from test_browser import _require_browser, page, server  # noqa: F401 (fixtures)
from test_contrast import GOOD_LINE, NIMBUS_QUOTES, ORBIT_QUOTES, contrast, good, seed

NIMBUS_CAP = "cap_nimbus-api_0"


def seeded(store: Store) -> dict[str, int]:
    """Two tools with a fine-tuning pair, their lines proposed; capability id -> line id."""
    seed(store)
    asyncio.run(contrast(store, _no_sleep, good))
    with store.transaction() as s:
        s.execute(
            update(Capability)
            .where(Capability.id.in_([NIMBUS_CAP, "cap_orbit-model_0"]))
            .values(status="approved")
        )
        return {row.capability_id: row.id for row in s.scalars(select(ContrastLine))}


async def _no_sleep(_seconds: float) -> None:
    return None


def line(store: Store, line_id: int) -> ContrastLine:
    with store.transaction() as s:
        found = s.get(ContrastLine, line_id)
        assert found is not None
        return found


def events(store: Store, cap_id: str) -> list[ReviewEvent]:
    with store.transaction() as s:
        return list(
            s.scalars(
                select(ReviewEvent)
                .where(ReviewEvent.capability_id == cap_id)
                .order_by(ReviewEvent.id)
            )
        )


def vs_line(shown: dict[str, Any], slug: str, cap_id: str) -> dict[str, Any]:
    side = shown["a"] if shown["a"]["slug"] == slug else shown["b"]
    return next(c for c in side["capabilities"] if c["id"] == cap_id)


def compared(cli: Any) -> dict[str, Any]:
    code, out, err = cli("compare", "nimbus-api", "orbit-model", "--format", "json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_lines_review_in_the_cli(store, cli):
    lines = seeded(store)
    nimbus = lines[NIMBUS_CAP]
    listed = cli.json("lines", "list", "nimbus-api")
    assert [(r["id"], r["status"], r["provenance"]) for r in listed] == [
        (nimbus, "proposed", "contrast")
    ]
    code, out, err = cli("lines", "show", str(nimbus))
    assert code == 0, err
    flat = " ".join(out.split())
    assert "Nimbus API: Fine-tuning" in flat and "Orbit Model: Self-hosted fine-tuning" in flat
    for quote in (NIMBUS_QUOTES[0][0], ORBIT_QUOTES[0][0]):
        assert all(word in flat for word in quote.split()[:4])
    shown = cli.json("lines", "show", str(nimbus))
    assert [s["tool"] for s in shown["sides"]] == ["nimbus-api", "orbit-model"]
    assert [q["quote"] for s in shown["sides"] for q in s["quotes"]] == [
        NIMBUS_QUOTES[0][0],
        ORBIT_QUOTES[0][0],
    ]

    # a draft line is not published; a preview shows it marked as a draft
    shown = compared(cli)
    cap = vs_line(shown, "nimbus-api", NIMBUS_CAP)
    assert cap["vs_alternatives"] == "Not stated in the docs."
    assert cap["provenance"]["vs_alternatives"]["source"] == "docs"
    preview = cli("compare", "nimbus-api", "orbit-model", "--include-unreviewed")[1]
    assert GOOD_LINE in preview and "model-written draft" in preview

    code, _, err = cli("lines", "approve", str(nimbus), "--reviewer", "robin")
    assert code == 0, err
    assert line(store, nimbus).status == "approved"
    shown = compared(cli)
    cap = vs_line(shown, "nimbus-api", NIMBUS_CAP)
    assert cap["vs_alternatives"] == GOOD_LINE
    prov = cap["provenance"]["vs_alternatives"]
    assert (prov["source"], prov["model"], prov["prompt_version"], prov["draft"]) == (
        "contrast",
        "mistral-small-latest",
        "contrast/v1",
        False,
    )
    assert len(prov["citations"]) == 2 and prov["checked"]
    html = cli("compare", "nimbus-api", "orbit-model", "--format", "html")[1]
    assert 'class="badge model-written"' in html and "model-written" in html

    edited = "Nimbus API fine-tunes hosted models; Orbit Model is fine-tuned on your own GPUs."
    code, _, err = cli(
        "lines", "edit", str(nimbus), "--value", edited, "--reviewer", "robin", "--note", "shorter"
    )
    assert code == 0, err
    shown = compared(cli)
    cap = vs_line(shown, "nimbus-api", NIMBUS_CAP)
    assert cap["vs_alternatives"] == edited
    assert cap["provenance"]["vs_alternatives"]["source"] == "editor"

    code, _, err = cli("lines", "reject", str(nimbus), "--reviewer", "robin")
    assert code == 0, err
    shown = compared(cli)
    assert vs_line(shown, "nimbus-api", NIMBUS_CAP)["vs_alternatives"] == "Not stated in the docs."

    trail = [(e.action, e.actor) for e in events(store, NIMBUS_CAP)]
    assert trail[-3:] == [
        ("contrast-approve", "robin"),
        ("contrast-edit", "robin"),
        ("contrast-reject", "robin"),
    ]
    assert ("contrast-proposed", "contrast") in trail
    history = cli.json("history", NIMBUS_CAP)
    assert "contrast-edit" in json.dumps(history)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lines", "approve", "999", "--reviewer", "r"], "unknown contrast line 999"),
        (["lines", "edit", "LINE", "--value", " ", "--reviewer", "r"], "edit needs a new text"),
        (["lines", "list", "--status", "maybe"], "unknown status 'maybe'"),
        (["contrast"], "name one or more tools, or pass --all"),
    ],
)
def test_lines_bad_input_is_one_line(store, cli, args, message):
    lines = seeded(store)
    args = [str(lines[NIMBUS_CAP]) if a == "LINE" else a for a in args]
    code, _, err = cli(*args)
    assert code in (1, 2) and err.startswith("error: ") and message in err
    assert line(store, lines[NIMBUS_CAP]).status == "proposed"


def test_dropped_line_cannot_be_approved(store, cli):
    lines = seeded(store)
    with store.transaction() as s:
        s.execute(update(ContrastLine).values(status="dropped"))
    code, _, err = cli("lines", "approve", str(lines[NIMBUS_CAP]), "--reviewer", "r")
    assert code == 1 and "is dropped" in err


@pytest.fixture
def lines_seeded(store) -> dict[str, int]:
    _require_browser()
    return seeded(store)


def test_contrast_line_review_in_the_browser(lines_seeded, store, server, page):  # noqa: F811
    nimbus = lines_seeded[NIMBUS_CAP]
    page.goto(f"{server}/capabilities/{NIMBUS_CAP}")
    page.fill("input[name=name]", "Robin Reviewer")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/capabilities/{NIMBUS_CAP}")
    section = page.locator("[data-contrast]")
    assert section.locator("[data-contrast-text]").inner_text() == GOOD_LINE
    sides = section.locator("[data-side]")
    assert sides.count() == 2
    assert NIMBUS_QUOTES[0][0] in sides.nth(0).inner_text()
    assert ORBIT_QUOTES[0][0] in sides.nth(1).inner_text()
    box0, box1 = sides.nth(0).bounding_box(), sides.nth(1).bounding_box()
    assert box0 is not None and box1 is not None and box1["x"] > box0["x"]  # side by side
    page.click("[data-contrast-action=approve] button")
    page.wait_for_url(f"{server}/capabilities/{NIMBUS_CAP}#contrast")
    assert page.text_content("[data-contrast-status]") == "approved"
    assert line(store, nimbus).status == "approved"
    page.click("#contrast details.edit summary")
    page.fill("[data-contrast-action=edit] textarea[name=text]", "Edited in the browser.")
    page.click("[data-contrast-action=edit] button")
    page.wait_for_url(f"{server}/capabilities/{NIMBUS_CAP}#contrast")
    row = line(store, nimbus)
    assert (row.text, row.edited, row.reviewed_by) == (
        "Edited in the browser.",
        True,
        "Robin Reviewer",
    )
    assert [e.action for e in events(store, NIMBUS_CAP)][-2:] == [
        "contrast-approve",
        "contrast-edit",
    ]


def test_queue_filter_finds_lines_waiting_for_review(store, cli):
    from decomposer.review.queries import select_capabilities
    from decomposer.views.review import queue_filter

    lines = seeded(store)
    f = queue_filter(None, "all", None, False, None, "contrast")
    with store.transaction() as s:
        assert sorted(c.id for c in select_capabilities(s, f)) == sorted(lines)
    assert cli("lines", "approve", str(lines[NIMBUS_CAP]), "--reviewer", "r")[0] == 0
    with store.transaction() as s:
        assert [c.id for c in select_capabilities(s, f)] == ["cap_orbit-model_0"]


def test_interactive_review_shows_and_approves_the_line(store, cli, monkeypatch):
    import io
    import sys

    lines = seeded(store)
    with store.transaction() as s:
        s.execute(update(Capability).values(status="proposed"))
    monkeypatch.setattr(sys, "stdin", io.StringIO("m\ns\nq\n"))
    code, out, _ = cli("review", "nimbus-api", "--reviewer", "robin")
    assert code == 0, out
    flat = " ".join(out.split())
    assert "[m] approve" in flat and "Orbit Model: Self-hosted fine-tuning" in flat
    assert all(word in flat for word in ORBIT_QUOTES[0][0].split()[:4])
    assert "model-written line" in flat and "approved" in flat
    assert line(store, lines[NIMBUS_CAP]).status == "approved"
    assert line(store, lines[NIMBUS_CAP]).reviewed_by == "robin"


def test_approving_a_line_regenerates_the_pages_that_show_it(store, cli, tmp_path):
    lines = seeded(store)
    out_dir = str(tmp_path / "pages")

    def regen() -> dict[str, Any]:
        code, out, err = cli("regenerate", "--out-dir", out_dir, "--json")
        assert code == 0, err
        result: dict[str, Any] = json.loads(out)
        return result

    first = regen()
    assert first["written"] == 3
    assert regen()["written"] == 0
    assert cli("lines", "approve", str(lines[NIMBUS_CAP]), "--reviewer", "r")[0] == 0
    assert regen()["written"] == 3
    written = (tmp_path / "pages" / "nimbus-api-vs-orbit-model.md").read_text("utf-8")
    assert GOOD_LINE in written and "model-written" in written
