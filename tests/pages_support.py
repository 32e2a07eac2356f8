"""Shared helpers for the comparator tests: the demo store and small synthetic tools."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from decomposer.cli.app import main
from decomposer.store import Store
from decomposer.store.catalogue_models import CatalogueEntry
from decomposer.store.contrast_models import ContrastLine
from decomposer.store.models import Capability, Document, Evidence, Tool

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
AS_OF = "2025-07-15"
AS_OF_DATE = date(2025, 7, 15)
NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
# Left as drafts in the demo store, so the default page shows approved records only.
UNAPPROVED = {"JSON mode", "Pinned model versions", "Community license terms"}
# Contrast lines approved in the demo store; the others stay proposed (drafts).
APPROVED_LINES = {"Fine-tuning jobs", "Image understanding with Pixtral", "LoRA adapter training"}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def build_demo(home: Path) -> Path:
    """The demo pipeline through the real CLI (offline replay), then reviews set in the DB."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DECOMPOSER_HOME", str(home))
        for args in (
            ["tool", "import", str(FIXTURES / "catalogue.toml")],
            ["ingest", "mistral-api", str(FIXTURES / "docs" / "mistral-api")],
            ["ingest", "llama-4", str(FIXTURES / "docs" / "llama-4")],
            ["extract", "mistral-api", "--replay", str(FIXTURES / "recordings")],
            ["extract", "llama-4", "--replay", str(FIXTURES / "recordings")],
            ["contrast", "--all", "--replay", str(FIXTURES / "recordings" / "contrast")],
        ):
            assert main(args) == 0, args
    from decomposer.store import open_store

    store = open_store(f"sqlite:///{home / 'decomposer.db'}")
    with store.transaction() as s:
        s.execute(
            update(Capability).where(Capability.name.not_in(UNAPPROVED)).values(status="approved")
        )
        # Pin document dates so Freshness does not depend on when the tests run.
        s.execute(update(Document).values(updated_at=NOW, ingested_at=NOW))
        s.execute(update(ContrastLine).values(created_at=NOW))
        approved = select(Capability.id).where(Capability.name.in_(APPROVED_LINES))
        s.execute(
            update(ContrastLine)
            .where(ContrastLine.capability_id.in_(approved))
            .values(status="approved", reviewed_by="demo", reviewed_at=NOW)
        )
    store.dispose()
    return home / "decomposer.db"


def install_db(db: Path, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(db, home / "decomposer.db")


def add_tool(
    store: Store,
    slug: str,
    caps: Iterable[dict[str, Any]] = (),
    *,
    categories: list[str] | None = None,
    signals: dict[str, Any] | None = None,
    type: str = "API",
    free_tier: bool | None = None,
    price: tuple[str, str, str] | None = None,
) -> None:
    """A tool with capabilities straight into the store (statuses set by the caller)."""
    with store.transaction() as s:
        tool = Tool(
            slug=slug,
            name=slug.replace("-", " ").title(),
            type=type,
            vendor="Acme",
            homepage=f"https://{slug}.example",
            created_at=NOW,
        )
        s.add(tool)
        s.flush()
        doc = Document(
            tool_id=tool.id,
            source=f"https://{slug}.example/docs",
            source_key=f"https://{slug}.example/docs",
            title=f"{slug} docs",
            media_type="text/markdown",
            content_hash="0" * 64,
            text="docs",
            ingested_at=NOW,
            updated_at=NOW,
        )
        s.add(doc)
        s.flush()
        s.add(
            CatalogueEntry(
                tool_id=tool.id,
                categories=categories or ["llm"],
                pricing_model=None,
                free_tier=free_tier,
                price_amount=price[0] if price else None,
                price_currency=price[1] if price else None,
                price_unit=price[2] if price else None,
                signals=signals or {},
                source="test",
                content_hash="x",
                imported_at=NOW,
                revision=1,
            )
        )
        for i, cap in enumerate(caps):
            quotes = cap.get("quotes", [(f"quote {i}", True)])
            s.add(
                Capability(
                    id=f"cap_{slug}_{i}",
                    tool_id=tool.id,
                    key=f"k{i}",
                    name=cap.get("name", f"Capability {i}"),
                    category=cap.get("category", "models"),
                    description=cap.get("description", f"Does thing {i}."),
                    unique=cap.get("unique", f"Unique thing {i}."),
                    vs_alternatives=cap.get("vs", f"Better than others at {i}."),
                    status=cap.get("status", "approved"),
                    version=1,
                    created_at=NOW,
                    updated_at=NOW,
                    evidence=[
                        Evidence(
                            quote=q,
                            grounded=g,
                            document_id=doc.id,
                            start=0,
                            end=1,
                            score=100.0 if g else 40.0,
                        )
                        for q, g in quotes
                    ],
                )
            )


def set_status(store: Store, name: str, status: str) -> None:
    with store.transaction() as s:
        s.execute(update(Capability).where(Capability.name == name).values(status=status))


def load_json(text: str) -> Any:
    return json.loads(text)
