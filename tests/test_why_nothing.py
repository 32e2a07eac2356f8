"""``regenerate`` and ``match similar`` say why nothing was written or found, and what to run."""

from __future__ import annotations

import json

import pytest

from conftest import CLI, REPO

RECORDINGS = REPO / "fixtures" / "recordings"


@pytest.fixture
def demo(capsys, monkeypatch) -> CLI:
    """The demo's two tools, extracted offline: every capability proposed, none approved."""
    monkeypatch.setenv("DECOMPOSER_REVIEWER", "tester")
    cli = CLI(capsys)
    for name, kind in (("Mistral API", "API"), ("Llama 4", "Model")):
        assert cli("tool", "add", name, "--type", kind)[0] == 0
    for slug in ("mistral-api", "llama-4"):
        assert cli("ingest", slug, str(REPO / "fixtures" / "docs" / slug))[0] == 0
        assert cli("extract", slug, "--replay", str(RECORDINGS))[0] == 0
    return cli


def test_regenerate_with_one_tool_says_add_another(cli, tmp_path):
    assert cli("tool", "add", "Solo", "--type", "API")[0] == 0
    code, out, _ = cli("regenerate", "--out-dir", str(tmp_path / "pages"))
    assert code == 0
    assert "0 pages written" in out
    assert "nothing to write: 1 tool(s) in the store" in out and "decomposer tool add" in out


def test_nothing_approved_is_named_with_the_next_command(demo, tmp_path):
    code, out, _ = demo("regenerate", "--out-dir", str(tmp_path / "pages"))
    assert code == 0 and "0 pages written" in out
    assert "0 of 2 tools have approved capabilities" in out
    assert "decomposer review" in out and "--include-unreviewed" in out
    code, out, _ = demo("regenerate", "--out-dir", str(tmp_path / "pages"), "--json")
    assert code == 0 and "approved capabilities" in json.loads(out)["why"]

    [first, *_] = demo.json("capabilities", "mistral-api")
    assert demo("approve", first["id"])[0] == 0
    code, out, _ = demo("match", "similar", "mistral-api")
    assert code == 0
    assert out.startswith("mistral-api: no similar tools: no other tool has approved capabilities")
    assert "decomposer review llama-4" in out
    assert "no other tool shares a capability" not in out


def test_no_shared_category_names_the_categories_and_compare(demo, tmp_path):
    mine = demo.json("capabilities", "mistral-api")[0]
    theirs = demo.json("capabilities", "llama-4")[0]
    for cap, category in ((mine, "platform"), (theirs, "pricing")):
        code, _, err = demo("edit", cap["id"], "--field", "category", "--value", category)
        assert code == 0, err
        assert demo("approve", cap["id"])[0] == 0
    code, out, _ = demo("regenerate", "--out-dir", str(tmp_path / "pages"))
    assert code == 0
    assert "no two tools share a category (llama-4: pricing; mistral-api: platform)" in out
    assert "`decomposer compare llama-4 mistral-api`" in out
    code, out, _ = demo("match", "similar", "mistral-api", "--json")
    assert code == 0 and "similar enough" in json.loads(out)["why"]
