"""The review UI for a team (issue 13): formatted tool facts, the queue's pagination, search,
filters and bulk actions with a confirm step, the help dialog and per-page keys."""

from __future__ import annotations

import re

import pytest

from decomposer.views.review import format_fact
from test_review import cap_row
from test_web import client, ids, login, make_client  # noqa: F401  (fixtures)

CATALOGUE = """schema_version = 1
[[tool]]
slug = "acmedb"
name = "AcmeDB"
type = "API"
categories = ["database"]
[tool.pricing]
model = "freemium"
free_tier = true
starting_price = { amount = "0.10", currency = "USD", unit = "1M input tokens" }
"""


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (
            {"amount": "0.10", "currency": "USD", "unit": "1M input tokens"},
            "$0.10 / 1M input tokens",
        ),
        ({"amount": "12.5", "currency": "CHF", "unit": "month"}, "12.50 CHF / month"),
        ({"amount": "1500", "currency": "EUR", "unit": ""}, "€1,500"),
        ({"amount": "0.0000001", "currency": "USD", "unit": "token"}, "$0.0000001 / token"),
        (True, "yes"),
        (False, "no"),
        (None, "—"),
        ("pay_as_you_go", "pay as you go"),
    ],
)
def test_facts_are_formatted_for_people(value, text):
    assert format_fact(value) == text


def test_tool_page_shows_prices_and_booleans_formatted(cli, client, tmp_path):  # noqa: F811
    path = tmp_path / "cat.toml"
    path.write_text(CATALOGUE)
    assert cli("tool", "import", str(path))[0] == 0
    login(client)
    page = client.get("/tools/acmedb").text
    assert "{&#39;amount&#39;" not in page and "True" not in page
    price = re.search(r'data-fact="starting_price">([^<]*)<', page)
    assert price is not None and price.group(1).strip() == "$0.10 / 1M input tokens"
    free = re.search(r'data-fact="free_tier">([^<]*)<', page)
    assert free is not None and free.group(1).strip() == "yes"
    assert 'href="/search?like=acmedb"' in page


def test_queue_search_filters_and_pages(client, ids):  # noqa: F811
    login(client)
    page = client.get("/", params={"status": "all", "q": "replication"}).text
    assert page.count("data-item") == 1 and "Synchronous replication" in page
    both = client.get("/", params={"status": "all", "q": "SYNCHRONOUS Replication"}).text
    assert both.count("data-item") == 1  # every word, any case
    assert (
        client.get("/", params={"status": "all", "q": "replication free"}).text.count("data-item")
        == 0
    )
    page = client.get("/", params={"status": "all", "category": "pricing"}).text
    assert page.count("data-item") == 1 and "Free tier" in page
    page = client.get("/", params={"status": "all", "evidence": "found"}).text
    assert page.count("data-item") == 3
    assert client.get("/", params={"evidence": "missing"}).text.count("data-item") == 0
    assert client.get("/", params={"evidence": "nope"}).status_code == 400
    first = client.get("/", params={"status": "all", "per_page": 25}).text
    assert "page 1 of" not in first  # three fit on one page
    api = client.get("/api/capabilities", params={"status": "all", "per_page": 2, "page": 2})
    assert api.status_code == 200 and len(api.json()) == 1
    assert (api.headers["x-total-count"], api.headers["x-pages"]) == ("3", "2")
    names = [c["name"] for c in client.get("/api/capabilities", params={"status": "all"}).json()]
    page1 = client.get("/api/capabilities", params={"status": "all", "per_page": 2}).json()
    assert [c["name"] for c in page1] == names[:2]
    assert client.get("/api/capabilities", params={"per_page": 0}).status_code == 400


def test_queue_pager_links(client, ids, store):  # noqa: F811
    login(client)
    from test_web_support import add_capabilities

    add_capabilities(store, 30)
    first = client.get("/", params={"status": "all", "per_page": 25}).text
    assert "page 1 of 2" in first and first.count("data-item") == 25
    assert 'rel="next"' in first and 'rel="prev"' not in first
    href = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(href).text
    assert "page 2 of 2" in second and second.count("data-item") == 8
    assert 'rel="prev"' in second
    assert (
        "page 2 of 2" in client.get("/", params={"status": "all", "per_page": 25, "page": 9}).text
    )


def test_bulk_approve_needs_a_confirm_and_is_all_or_nothing(client, ids, settings):  # noqa: F811
    login(client)
    queue = client.get("/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', queue.text).group(1)
    items = re.findall(r'name="item" value="([^"]+)"', queue.text)
    assert len(items) == 3
    data = {"csrf_token": csrf, "action": "approve", "item": items[:2], "back": "/?status=all"}
    confirm = client.post("/bulk", data=data)
    assert confirm.status_code == 200 and "Approve 2 capabilities?" in confirm.text
    assert all(cap_row(settings, i.split(":")[0])[0].status == "proposed" for i in items)
    assert (
        client.post("/bulk", data={**data, "confirm": "yes", "csrf_token": "x"}).status_code == 403
    )
    # a stale version: nothing changes, the confirm page says why
    stale = [items[0], items[1].rsplit(":", 1)[0] + ":7"]
    r = client.post("/bulk", data={**data, "item": stale, "confirm": "yes"})
    assert r.status_code == 409 and "Nothing was changed" in r.text
    assert cap_row(settings, items[0].split(":")[0])[0].status == "proposed"
    r = client.post("/bulk", data={**data, "confirm": "yes"})
    assert r.status_code == 303 and r.headers["location"] == "/?status=all"
    for item in items[:2]:
        cap, events = cap_row(settings, item.split(":")[0])
        assert cap.status == "approved" and events[-1].actor == "alice"
    assert "approved 2 capabilities" in client.get("/?status=all").text
    r = client.post("/bulk", data={**data, "action": "nuke"})
    assert r.status_code == 400
    r = client.post("/bulk", data={**data, "item": []})
    assert r.status_code == 400 and "tick at least one" in r.text


def test_bulk_api_with_csrf(client, ids, settings):  # noqa: F811
    csrf = login(client)
    caps = client.get("/api/capabilities").json()
    body = {"action": "reject", "items": [{"id": c["id"], "version": c["version"]} for c in caps]}
    assert client.post("/api/capabilities/bulk", json=body).status_code == 403
    r = client.post("/api/capabilities/bulk", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and {o["status"] for o in r.json()} == {"rejected"}
    r = client.post("/api/capabilities/bulk", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409
    assert all(cap_row(settings, c["id"])[0].version == 2 for c in caps)


def test_help_is_a_dialog_and_footer_lists_each_pages_keys(client, ids):  # noqa: F811
    login(client)
    queue = client.get("/").text
    assert "alert(" not in client.get("/static/review.js").text
    assert '<dialog id="help"' in queue and 'aria-labelledby="help-title"' in queue
    footer = re.search(r"<footer[^>]*>(.*?)</footer>", queue, re.S).group(1)
    for key in ("j", "n", "k", "p", "x", "a", "r", "e", "?"):
        assert f"<kbd>{key}</kbd>" in footer
    cap = client.get(f"/capabilities/{ids['Synchronous replication']}").text
    footer = re.search(r"<footer[^>]*>(.*?)</footer>", cap, re.S).group(1)
    assert "<kbd>k</kbd>" in footer and "data-prev" in cap and "data-next" in cap
    tool = client.get("/tools/acmedb").text
    footer = re.search(r"<footer[^>]*>(.*?)</footer>", tool, re.S).group(1)
    assert "<kbd>a</kbd>" not in footer and "<kbd>?</kbd>" in footer


def test_evidence_context_is_rendered_from_markdown_safely():
    from decomposer.web.markdown import render_context, render_markdown

    html = str(
        render_context(
            "# Title\n\nSome **bold** <script>alert(1)</script> [x](javascript:alert(1)) and ",
            "the <b>quote</b>",
            ' after <img src=x onerror="alert(1)"> [ok](https://a.example)\n\n- item',
        )
    )
    assert "<h3>Title</h3>" in html and "<strong>bold</strong>" in html
    assert "<mark>the &lt;b&gt;quote&lt;/b&gt;</mark>" in html
    assert "<script" not in html and 'href="javascript' not in html and "<img" not in html
    assert '<a href="https://a.example" rel="noopener noreferrer">ok</a>' in html
    assert "<li>item</li>" in html
    assert str(render_markdown("\ue000*a*\ue001")) == "<p><em>a</em></p>\n"


def test_capability_page_renders_evidence_markdown(client, ids):  # noqa: F811
    login(client)
    page = client.get(f"/capabilities/{ids['Synchronous replication']}").text
    context = re.search(r"<blockquote class=\"md\" data-context>(.*?)</blockquote>", page, re.S)
    assert context is not None
    assert "<h3>Replication</h3>" in context.group(1) and "## " not in context.group(1)
    assert "<mark>" in context.group(1)


def _other_tool(cli, store) -> None:
    from test_web_support import add_capabilities

    assert cli("tool", "add", "Other DB", "--type", "API")[0] == 0
    add_capabilities(store, 1, slug="other-db")
    from sqlalchemy import update

    from decomposer.store.models import Capability

    with store.transaction() as s:
        s.execute(
            update(Capability)
            .where(Capability.id == "cap_extra00")
            .values(name="Continuous backups", description="Point-in-time restore of backups.")
        )


def test_search_page_ranks_capabilities_across_tools(cli, client, ids, store):  # noqa: F811
    _other_tool(cli, store)
    login(client)
    page = client.get("/search", params={"q": "point-in-time recovery"})
    assert page.status_code == 200
    names = re.findall(r"<strong>([^<]+)</strong>", page.text)
    assert names[:2] == ["Point-in-time recovery", "Continuous backups"]
    assert "lexical" in page.text and "data-search" in page.text
    api = client.get("/api/search", params={"q": "point-in-time recovery", "k": 1}).json()
    assert [h["name"] for h in api["hits"]] == ["Point-in-time recovery"]
    assert api["hits"][0]["tool"] == "acmedb" and api["hits"][0]["graph_queries"] == 0
    # alternatives to acmedb: only other tools' capabilities
    alt = client.get("/api/search", params={"like": "acmedb"}).json()
    assert [h["tool"] for h in alt["hits"]] == ["other-db"]
    assert client.get("/search", params={"like": "nope"}).status_code == 400
    assert "No capability shares a word" in client.get("/search", params={"q": "zzzz"}).text
    assert "Type what you need" in client.get("/search").text


def test_search_link_from_tool_page_and_comparison_works(cli, client, ids, store):  # noqa: F811
    _other_tool(cli, store)
    login(client)
    tool = client.get("/tools/acmedb").text
    href = re.search(r'href="([^"]+)">Search the match graph for alternatives', tool).group(1)
    assert client.get(href.replace("&amp;", "&")).status_code == 200
    assert "allow-top-navigation-by-user-activation" in tool
    preview = client.get("/compare/acmedb/other-db").text
    link = re.search(r'<p class="search"><a href="([^"]+)" target="_top">Need something', preview)
    assert link is not None and link.group(1) == "/search?like=acmedb"
    assert "Continuous backups" in client.get(link.group(1)).text


def test_search_loads_no_model_sdk(settings, ids):  # noqa: F811
    """The search page loads the matcher, but never a provider SDK."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys, warnings
        warnings.simplefilter("ignore")
        from decomposer.core.config import Settings
        from decomposer.web import UISettings, create_app
        from fastapi.testclient import TestClient

        c = TestClient(create_app(Settings.from_env(), UISettings(secret="s" * 32)),
                       base_url="http://127.0.0.1")
        csrf = c.get("/api/session").json()["csrf_token"]
        c.post("/api/login", json={"name": "alice"}, headers={"X-CSRF-Token": csrf})
        assert c.get("/search?q=recovery").status_code == 200
        assert "decomposer.matching.align" in sys.modules
        print(sorted(m for m in sys.modules if m.startswith(("instructor", "openai", "mistralai"))))
        """
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DECOMPOSER_HOME": str(settings.home),
        "DECOMPOSER_DATABASE_URL": settings.database_url,
    }
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_queue_filters_by_provenance(client, ids, cli):  # noqa: F811
    login(client)
    name, cap_id = sorted(ids.items())[0]
    code, _, err = cli(
        "edit", cap_id, "--field", "unique", "--value", "Edited.", "--reviewer", "carol"
    )
    assert code == 0, err
    edited = client.get("/", params={"status": "all", "provenance": "editor"}).text
    assert edited.count("data-item") == 1 and name in edited
    docs = client.get("/", params={"status": "all", "provenance": "docs"}).text
    assert docs.count("data-item") == 2 and name not in docs
    api = client.get("/api/capabilities", params={"status": "all", "provenance": "editor"})
    assert [c["id"] for c in api.json()] == [cap_id]
    assert client.get("/", params={"provenance": "model"}).status_code == 400
