"""The tool catalogue: import (idempotent, all-or-nothing), `tool show`, and profile merging."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from decomposer.store import open_store
from decomposer.store.catalogue_models import CatalogueEntry
from decomposer.store.models import ProfileFact, Tool
from pages_support import FIXTURES, run

CATALOGUE = FIXTURES / "catalogue.toml"


def rows(settings):
    store = open_store(settings.database_url)
    with store.transaction() as s:
        tools = {t.slug: (t.name, t.type, t.vendor, t.homepage) for t in s.scalars(select(Tool))}
        entries = {
            e.tool_id: (
                e.categories,
                e.pricing_model,
                e.free_tier,
                e.price_amount,
                e.price_currency,
                e.price_unit,
                e.signals,
                e.revision,
            )
            for e in s.scalars(select(CatalogueEntry))
        }
    store.dispose()
    return tools, entries


def test_import_creates_tools_and_entries_and_is_idempotent(settings, capsys):
    code, out, err = run(capsys, "tool", "import", str(CATALOGUE))
    assert code == 0, err
    assert "2 added, 0 updated, 0 unchanged" in out
    tools, entries = rows(settings)
    assert tools["mistral-api"] == ("Mistral API", "API", "Mistral AI", "https://docs.mistral.ai")
    assert tools["llama-4"][1] == "Model"
    mistral = next(e for e in entries.values() if e[1] == "freemium")
    assert mistral[:6] == (["llm"], "freemium", True, "0.10", "USD", "1M input tokens")
    assert mistral[6] == {
        "github_stars": 700,
        "monthly_downloads": 1500000,
        "integrations": 40,
        "last_release": "2025-05-28",
        "provenance": {
            "pricing": {
                "checked_on": "2025-06-20",
                "source": "fixtures/docs/mistral-api/models-and-pricing.md",
            },
            "signals": {"checked_on": "2025-01-10"},
        },
    }
    code, out, _ = run(capsys, "tool", "import", str(CATALOGUE))
    assert code == 0 and "0 added, 0 updated, 2 unchanged" in out
    assert rows(settings) == (tools, entries)


def test_reimport_with_changes_updates_in_place(settings, capsys, tmp_path):
    assert run(capsys, "tool", "import", str(CATALOGUE))[0] == 0
    changed = tmp_path / "c.toml"
    changed.write_text(CATALOGUE.read_text().replace("github_stars = 700", "github_stars = 900"))
    code, out, _ = run(capsys, "tool", "import", str(changed))
    assert code == 0 and "updated: mistral-api" in out and "unchanged: llama-4" in out
    _, entries = rows(settings)
    mistral = next(e for e in entries.values() if e[1] == "freemium")
    assert mistral[6]["github_stars"] == 900 and mistral[7] == 2


BAD = {
    "missing file": (None, "cannot read catalogue"),
    "invalid toml": ("[[tool]\nname=", "invalid TOML"),
    "no tools": ("schema_version = 1\n", "tool: Field required"),
    "unknown signal": (
        '[[tool]]\nname = "X"\n[tool.signals]\nstars = 3\n',
        "tool[1] (X) signals.stars: Extra inputs are not permitted",
    ),
    "negative count": (
        '[[tool]]\nname = "X"\n[tool.signals]\ngithub_stars = -1\n',
        "github_stars: Input should be greater than or equal to 0",
    ),
    "bad type": ('[[tool]]\nname = "X"\ntype = "Gadget"\n', "unknown tool type 'Gadget'"),
    "bad currency": (
        '[[tool]]\nname = "X"\n[tool.pricing]\nstarting_price = '
        '{ amount = 1, currency = "dollars", unit = "x" }\n',
        "currency",
    ),
    "duplicate": ('[[tool]]\nname = "X"\n[[tool]]\nname = "X"\n', "tool 'x' is declared twice"),
    "bad slug": ('[[tool]]\nname = "X"\nslug = "Not A Slug"\n', "invalid slug"),
    "bad date": (
        '[[tool]]\nname = "X"\n[tool.signals]\nlast_release = "yesterday"\n',
        "last_release",
    ),
    "future schema": ('schema_version = 2\n[[tool]]\nname = "X"\n', "schema_version"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_catalogue_is_one_line_and_writes_nothing(settings, capsys, tmp_path, case):
    content, message = BAD[case]
    path = tmp_path / "bad.toml"
    if content is not None:
        # A valid tool first: a later error must not leave it half-imported.
        path.write_text(
            '[[tool]]\nname = "Good"\n' + content if content.startswith("[[tool]]") else content
        )
    code, out, err = run(capsys, "tool", "import", str(path))
    assert code == 1, out
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert rows(settings) == ({}, {})


def test_catalogue_wins_and_docs_fill_the_gaps(settings, capsys):
    assert run(capsys, "tool", "import", str(CATALOGUE))[0] == 0
    store = open_store(settings.database_url)
    with store.transaction() as s:
        llama = s.scalar(select(Tool).where(Tool.slug == "llama-4"))
        mistral = s.scalar(select(Tool).where(Tool.slug == "mistral-api"))
        for tool_id, field, value, grounded in (
            (
                llama.id,
                "starting_price",
                {"amount": 0.2, "currency": "USD", "unit": "1M tokens"},
                True,
            ),
            (llama.id, "pricing_model", "paid", True),  # catalogue says open-weights: it wins
            (mistral.id, "starting_price", {"amount": 9, "currency": "USD", "unit": "x"}, True),
        ):
            s.add(
                ProfileFact(tool_id=tool_id, field=field, value=value, quote="q", grounded=grounded)
            )
    store.dispose()
    code, out, _ = run(capsys, "tool", "show", "llama-4", "--json")
    profile = json.loads(out)["profile"]
    assert profile["pricing_model"] == {
        "value": "open-weights",
        "source": "catalogue",
        "quote": None,
        "origin": None,  # Llama 4's catalogue entry declares no source or check date
        "checked_on": None,
    }
    assert profile["starting_price"]["source"] == "docs"
    assert profile["starting_price"]["value"] == {
        "amount": "0.2",
        "currency": "USD",
        "unit": "1M tokens",
    }
    code, out, _ = run(capsys, "tool", "show", "mistral-api", "--json")
    assert json.loads(out)["profile"]["starting_price"]["value"]["amount"] == "0.10"
    code, out, _ = run(capsys, "tool", "show", "llama-4")
    assert code == 0 and "pricing_model: open-weights (from catalogue)" in out
    code, _, err = run(capsys, "tool", "show", "nosuch")
    assert code == 1 and err.startswith("error: unknown tool 'nosuch'")


def test_ungrounded_doc_facts_are_not_used(settings, capsys):
    assert run(capsys, "tool", "import", str(CATALOGUE))[0] == 0
    store = open_store(settings.database_url)
    with store.transaction() as s:
        llama = s.scalar(select(Tool).where(Tool.slug == "llama-4"))
        s.add(
            ProfileFact(
                tool_id=llama.id,
                field="starting_price",
                grounded=False,
                value={"amount": 1, "currency": "USD", "unit": "x"},
            )
        )
    store.dispose()
    _code, out, _ = run(capsys, "tool", "show", "llama-4", "--json")
    assert json.loads(out)["profile"]["starting_price"] is None
