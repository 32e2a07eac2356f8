""" "Checked on" dates: catalogue values carry where and when they were checked, pages show the
source and date of every price and capability, and `decomposer stale` lists what is too old."""

from __future__ import annotations

import json

import pytest

from pages_support import AS_OF, FIXTURES, build_demo, install_db, run

CATALOGUE = FIXTURES / "catalogue.toml"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("demo-stale"))


@pytest.fixture
def demo(demo_db, settings):
    install_db(demo_db, settings.home)
    return settings


def test_stale_lists_old_and_undated_catalogue_values(settings, capsys):
    assert run(capsys, "tool", "import", str(CATALOGUE))[0] == 0
    code, out, err = run(capsys, "stale", "--as-of", AS_OF, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["stale_after_days"] == 90
    got = {(i["tool"], i["what"]): i for i in data["items"]}
    # Mistral's pricing was checked 2025-06-20 (25 days before): current, not listed.
    assert ("mistral-api", "catalogue pricing") not in got
    old = got[("mistral-api", "catalogue signals")]
    assert old["checked_on"] == "2025-01-10" and old["age_days"] == 186
    assert got[("llama-4", "catalogue pricing")]["checked_on"] is None  # never dated
    assert got[("llama-4", "catalogue pricing")]["source"] == "catalogue entry"
    code, out, _ = run(capsys, "stale", "--as-of", AS_OF, "--stale-after", "365")
    assert code == 0
    assert "mistral-api  catalogue signals" not in out
    assert "llama-4  catalogue pricing  catalogue entry  never dated" in out
    assert out.strip().endswith("stale (older than 365 days as of 2025-07-15)")
    code, out, _ = run(capsys, "tool", "show", "mistral-api")
    assert "  pricing checked: 2025-06-20 at fixtures/docs/mistral-api/models-and-pricing.md" in out
    assert "  signals checked: 2025-01-10\n" in out


def test_stale_lists_documents_by_their_fetch_date(demo, capsys):
    code, out, _ = run(capsys, "stale", "--as-of", "2026-01-15", "--json")
    assert code == 0
    docs = [i for i in json.loads(out)["items"] if i["what"] == "document"]
    assert len(docs) == 10  # 7 Mistral + 3 Llama 4 documents, all fetched 2025-07-01
    assert {d["checked_on"] for d in docs} == {"2025-07-01"}
    code, out, _ = run(capsys, "stale", "--as-of", AS_OF, "--json")
    assert not [i for i in json.loads(out)["items"] if i["what"] == "document"]


def test_checked_on_must_be_a_date_and_unknown_keys_still_fail(settings, capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'schema_version = 1\n[[tool]]\nname = "X"\n[tool.pricing]\nchecked_on = "soon"\n',
        "utf-8",
    )
    code, _, err = run(capsys, "tool", "import", str(bad))
    assert code == 1 and "checked_on" in err and len(err.strip().splitlines()) == 1
    bad.write_text(
        'schema_version = 1\n[[tool]]\nname = "X"\n[tool.signals]\nchecked = 2025-01-01\n',
        "utf-8",
    )
    code, _, err = run(capsys, "tool", "import", str(bad))
    assert code == 1 and "checked" in err


def test_pages_show_sources_and_dates_and_flag_stale_ones(demo, capsys):
    code, md, err = run(capsys, "compare", "mistral-api", "llama-4", "--as-of", AS_OF)
    assert code == 0, err
    assert (
        "Sources: Mistral API: Pricing, Starting Price, free tier from catalogue entry "
        "(models-and-pricing.md), checked on 2025-06-20. Llama 4: Pricing, free tier from "
        "catalogue entry, check date not stated *(stale)*." in md
    )
    assert "Source: structured-output.md, fetched on 2025-07-01.\n" in md
    # Every shown capability carries a source line.
    assert md.count("\nSource: ") == md.count("\nEvidence: ")
    code, md, _ = run(capsys, "compare", "mistral-api", "llama-4", "--as-of", "2026-01-15")
    assert code == 0
    assert "Source: structured-output.md, fetched on 2025-07-01 *(stale)*." in md
    assert "(models-and-pricing.md), checked on 2025-06-20 *(stale)*" in md
    code, md, _ = run(
        capsys, "compare", "mistral-api", "llama-4", "--as-of", "2026-01-15", "--stale-after", "400"
    )
    assert "fetched on 2025-07-01 *(stale)*" not in md
    assert "Values checked more than 400 days before 2026-01-01" in md
    code, out, _ = run(
        capsys, "compare", "mistral-api", "llama-4", "--as-of", AS_OF, "--format", "json"
    )
    page = json.loads(out)
    assert page["a"]["profile"]["starting_price"]["checked_on"] == "2025-06-20"
    assert page["a"]["sources"][0]["fields"] == ["Pricing", "Starting Price", "free tier"]
    evidence = page["a"]["capabilities"][0]["evidence"][0]
    assert evidence["fetched_on"] == "2025-07-01" and evidence["stale"] is False
    code, html, _ = run(
        capsys, "compare", "mistral-api", "llama-4", "--as-of", "2026-01-15", "--format", "html"
    )
    badge = '<span class="badge warn">stale</span>'
    assert f'<time datetime="2025-07-01">2025-07-01</time> {badge}' in html


def test_a_new_check_date_or_limit_regenerates_the_pages(demo, capsys, tmp_path):
    def regen(*extra: str) -> dict:
        code, out, err = run(
            capsys, "regenerate", "--out-dir", str(tmp_path), "--as-of", AS_OF, "--json", *extra
        )
        assert code == 0, err
        return json.loads(out)

    assert regen()["written"] == 3
    assert regen()["written"] == 0
    text = CATALOGUE.read_text("utf-8").replace(
        "checked_on = 2025-06-20", "checked_on = 2025-07-02"
    )
    moved = tmp_path / "catalogue.toml"
    moved.write_text(text, "utf-8")
    assert run(capsys, "tool", "import", str(moved))[0] == 0
    assert regen()["written"] == 3
    assert "checked on 2025-07-02" in (tmp_path / "llama-4-vs-mistral-api.md").read_text("utf-8")
    assert regen("--stale-after", "30")["written"] == 3


def test_the_cli_default_is_the_documented_limit():
    from decomposer.catalog.catalogue import STALE_AFTER_DAYS
    from decomposer.cli.pages import STALE_DEFAULT

    assert STALE_DEFAULT == STALE_AFTER_DAYS == 90


def test_an_ungrounded_draft_still_names_its_document_and_date(settings, capsys):
    from decomposer.store import open_store
    from pages_support import add_tool

    store = open_store(settings.database_url)
    add_tool(store, "alpha", [{"name": "A1"}])
    add_tool(
        store,
        "beta",
        [
            {"name": "B1"},
            {"name": "B2", "status": "ungrounded", "quotes": [("not in the docs", False)]},
        ],
    )
    store.dispose()
    for fmt, needle in (
        ("md", "Source: https://beta.example/docs, fetched on 2025-07-01 (the quote was not found"),
        ("html", 'fetched on <time datetime="2025-07-01">2025-07-01</time> (the quote was not'),
    ):
        code, out, err = run(
            capsys,
            "compare",
            "alpha",
            "beta",
            "--include-unreviewed",
            "--as-of",
            AS_OF,
            "--format",
            fmt,
        )
        assert code == 0, err
        assert needle in out
