"""The demo's contrast recordings: every capability with counterparts gets a checked line, the
recorded hostile answer is re-asked, and a second run makes no call."""

from __future__ import annotations

from sqlalchemy import select

from decomposer.store import open_store
from decomposer.store.contrast_models import ContrastLine
from decomposer.store.models import Capability, LLMCall
from pages_support import FIXTURES, build_demo, install_db


def test_demo_contrast_lines(tmp_path, settings, cli):
    install_db(build_demo(tmp_path / "demo"), settings.home)
    store = open_store(settings.database_url)
    with store.transaction() as s:
        rows = s.execute(
            select(Capability.name, ContrastLine.status, ContrastLine.rejections).join(
                Capability, Capability.id == ContrastLine.capability_id
            )
        ).all()
        calls = list(s.scalars(select(LLMCall).where(LLMCall.task == "contrast")))
    names = {name for name, _, _ in rows}
    assert {"Fine-tuning jobs", "Fine-tuning on custom data"} <= names
    assert {"Image understanding with Pixtral", "Multimodal text and image input"} <= names
    assert len(rows) == 6 and all(status != "dropped" for _, status, _ in rows)
    pixtral = next(r for n, _, r in rows if n == "Image understanding with Pixtral")
    assert {"marketing", "unsupported_comparative"} <= set(pixtral)
    assert sum(c.attempts for c in calls) == len(calls) + 1  # the one recorded re-ask
    report = cli.json("contrast", "--all", "--replay", str(FIXTURES / "recordings" / "contrast"))
    assert (report["calls"], report["cache_hits"], report["unchanged"]) == (0, 0, 6)
    store.dispose()
