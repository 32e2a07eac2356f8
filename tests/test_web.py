"""The web UI and JSON API through FastAPI's TestClient: auth, CSRF, escaping, reviews,
conflicts (409, nothing lost), diff view, tool page and comparison preview."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import textwrap
import warnings

import pytest
from sqlalchemy import select
from starlette.exceptions import StarletteDeprecationWarning

from decomposer.core.clock import utcnow
from decomposer.core.errors import ConfigError
from decomposer.review.actions import submit
from decomposer.store.models import Capability, Tool
from decomposer.web import UISettings, create_app, ui_settings
from test_diff import second_run
from test_review import THREE, cap_row, extract_tool

with warnings.catch_warnings():
    # starlette 1.x prefers httpx2 for its TestClient; httpx (pinned) works the same here
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

TOKEN = "tok-Qm4rX8vK2pLz9wNc"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def ids(cli, tmp_path, monkeypatch) -> dict[str, str]:
    return extract_tool(cli, tmp_path, monkeypatch)


def make_client(settings, store, token: str | None = None, hosts=None) -> TestClient:
    ui = UISettings(token=token, secret="test-secret-" + "x" * 20, allowed_hosts=hosts)
    return TestClient(create_app(settings, ui, store=store), follow_redirects=False)


def login(client: TestClient, name: str = "alice", token: str | None = None) -> str:
    page = client.get("/login")
    csrf = CSRF.search(page.text).group(1)
    data = {"csrf_token": csrf, "name": name, "next": "/"}
    if token:
        data["token"] = token
    r = client.post("/login", data=data)
    assert r.status_code == 303, r.text
    return client.get("/api/session").json()["csrf_token"]


@pytest.fixture
def client(settings, store, ids) -> TestClient:
    return make_client(settings, store)


def test_pages_and_api_need_login(client):
    r = client.get("/capabilities/cap_x?x=1")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fcapabilities")
    assert client.get("/api/tools").status_code == 401
    assert client.get("/api/session").json()["reviewer"] is None


def test_login_needs_csrf_and_token(settings, store, ids):
    c = make_client(settings, store, token=TOKEN)
    page = c.get("/login")
    assert 'name="token"' in page.text
    csrf = CSRF.search(page.text).group(1)
    assert c.post("/login", data={"name": "alice", "token": TOKEN}).status_code == 403
    r = c.post("/login", data={"csrf_token": csrf, "name": "alice", "token": "wrong-token-xx"})
    assert r.status_code == 401 and "Wrong access token" in r.text
    assert c.get("/api/tools").status_code == 401
    r = c.post(
        "/login", data={"csrf_token": csrf, "name": "alice", "token": TOKEN, "next": "//evil"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert c.get("/api/session").json()["reviewer"] == "alice"
    # JSON login needs the header too
    c2 = make_client(settings, store, token=TOKEN)
    info = c2.get("/api/session").json()
    assert info["token_required"] is True
    assert c2.post("/api/login", json={"name": "bob", "token": TOKEN}).status_code == 403
    r = c2.post(
        "/api/login",
        json={"name": "bob", "token": TOKEN},
        headers={"X-CSRF-Token": info["csrf_token"]},
    )
    assert r.status_code == 200 and r.json()["reviewer"] == "bob"


def test_queue_filters_and_counts(client, ids):
    login(client)
    page = client.get("/")
    assert page.status_code == 200
    assert "3 capabilities" in page.text and "Point-in-time recovery" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    only = client.get("/", params={"tool": "acmedb", "category": "pricing"})
    assert "1 capabilities" in only.text and "Free tier" in only.text
    none = client.get("/", params={"ungrounded": "true"})
    assert "0 capabilities" in none.text
    approved = client.get("/", params={"status": "approved"})
    assert "0 capabilities" in approved.text
    assert client.get("/", params={"status": "bogus"}).status_code == 400
    tools = client.get("/api/tools").json()
    assert tools[0]["slug"] == "acmedb" and tools[0]["counts"]["pending"] == 3


def test_capability_page_shows_evidence_in_context_and_forms(client, ids):
    login(client)
    cid = ids["Point-in-time recovery"]
    page = client.get(f"/capabilities/{cid}")
    assert page.status_code == 200
    assert "<mark>point-in-time recovery to any second within 35 days</mark>" in page.text
    assert "AcmeDB supports " in page.text  # surrounding source text
    assert re.search(r'href="/documents/\d+\?cap=' + cid + r'#q\d+"', page.text)
    assert page.text.count('name="csrf_token"') >= 4
    assert 'action="/capabilities/' + cid + '/review"' in page.text
    doc_id = re.search(r'href="/documents/(\d+)', page.text).group(1)
    doc = client.get(f"/documents/{doc_id}", params={"cap": cid})
    assert doc.status_code == 200 and '<mark id="q' in doc.text
    assert client.get("/capabilities/cap_nope").status_code == 404
    assert client.get("/documents/999").status_code == 404


def test_review_form_needs_csrf_then_approves_and_goes_to_next(client, ids, settings):
    csrf = login(client)
    cid = ids["Point-in-time recovery"]
    r = client.post(f"/capabilities/{cid}/review", data={"action": "approve", "version": "1"})
    assert r.status_code == 403
    r = client.post(
        f"/capabilities/{cid}/review",
        data={"action": "approve", "version": "1", "csrf_token": "forged"},
    )
    assert r.status_code == 403
    assert cap_row(settings, cid)[0].status == "proposed"
    r = client.post(
        f"/capabilities/{cid}/review",
        data={"action": "approve", "version": "1", "csrf_token": csrf},
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/capabilities/{ids['Synchronous replication']}"
    cap, events = cap_row(settings, cid)
    assert (cap.status, cap.version, events[-1].actor) == ("approved", 2, "alice")
    assert "approved " + cid in client.get(r.headers["location"]).text  # flash message
    # edit + approve, and reject with a note
    sync = ids["Synchronous replication"]
    form = {
        "action": "approve_edits",
        "version": "1",
        "csrf_token": csrf,
        "name": "Sync replication",
        "category": "platform",
        "description": "Three zones.",
        "unique": "Synchronous replication is on by default.",
        "vs_alternatives": "Not stated in the docs.",
    }
    assert client.post(f"/capabilities/{sync}/review", data=form).status_code == 303
    cap, events = cap_row(settings, sync)
    assert (cap.name, cap.description, cap.status) == (
        "Sync replication",
        "Three zones.",
        "approved",
    )
    assert events[-1].edited and set(events[-1].changes) == {"name", "description", "status"}
    free = ids["Free tier"]
    r = client.post(
        f"/capabilities/{free}/review",
        data={"action": "reject", "version": "1", "csrf_token": csrf, "note": "pricing"},
    )
    assert r.status_code == 303
    assert cap_row(settings, free)[0].status == "rejected"
    page = client.get(f"/capabilities/{free}")
    assert "pricing" in page.text and "alice" in page.text  # history


def test_two_reviewers_conflict_in_the_browser_forms_nothing_lost(settings, store, ids):
    alice, bob = make_client(settings, store), make_client(settings, store)
    a_csrf, b_csrf = login(alice, "alice"), login(bob, "bob")
    cid = ids["Synchronous replication"]
    base = {"version": "1", "category": "platform", "unique": "u", "vs_alternatives": "v"}
    r = alice.post(
        f"/capabilities/{cid}/review",
        data={**base, "action": "edit", "csrf_token": a_csrf, "name": "A", "description": "alice"},
    )
    assert r.status_code == 303
    r = bob.post(
        f"/capabilities/{cid}/review",
        data={**base, "action": "edit", "csrf_token": b_csrf, "name": "B", "description": "bob"},
    )
    assert r.status_code == 409
    assert "Conflict — your change was not applied" in r.text
    assert ">bob</textarea>" in r.text  # bob's text is still in his form
    assert "version 2" in r.text
    cap, events = cap_row(settings, cid)
    assert (cap.name, cap.description, cap.version) == ("A", "alice", 2)
    assert events[-1].action == "conflict" and events[-1].changes["description"][1] == "bob"


def test_api_review_csrf_conflict_and_errors(client, ids, settings):
    csrf = login(client)
    cid = ids["Free tier"]
    body = {"action": "approve", "version": 1}
    assert client.post(f"/api/capabilities/{cid}/review", json=body).status_code == 403
    h = {"X-CSRF-Token": csrf}
    r = client.post(f"/api/capabilities/{cid}/review", json=body, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "approved" and r.json()["version"] == 2
    r = client.post(
        f"/api/capabilities/{cid}/review",
        json={"action": "edit", "version": 1, "changes": {"name": "Free"}},
        headers=h,
    )
    assert r.status_code == 409
    assert r.json()["current"]["version"] == 2 and r.json()["yours"]["changes"] == {"name": "Free"}
    r = client.post(
        f"/api/capabilities/{cid}/review", json={"action": "approve", "version": 2}, headers=h
    )
    assert r.status_code == 400 and "already approved" in r.json()["detail"]
    r = client.post("/api/capabilities/cap_x/review", json=body, headers=h)
    assert r.status_code == 404
    r = client.post(
        f"/api/capabilities/{cid}/review", json={"action": "nuke", "version": 2}, headers=h
    )
    assert r.status_code == 422
    detail = client.get(f"/api/capabilities/{cid}").json()
    assert detail["status"] == "approved" and detail["evidence"][0]["context"]["match"]
    assert [e["action"] for e in client.get(f"/api/capabilities/{cid}/history").json()] == [
        "created",
        "approve",
        "conflict",
    ]
    listed = client.get("/api/capabilities", params={"tool": "acmedb", "status": "all"}).json()
    assert len(listed) == 3
    assert client.post("/api/logout").status_code == 403
    assert client.post("/api/logout", headers=h).status_code == 204
    assert client.get("/api/tools").status_code == 401


def test_everything_is_escaped(client, ids, store):
    evil = '<script>alert("x")</script>'
    submit(
        store,
        ids["Free tier"],
        "edit",
        reviewer="<b>eve</b>",
        now=utcnow,
        changes={"name": evil, "description": evil},
    )
    login(client)
    for url in ("/", f"/capabilities/{ids['Free tier']}"):
        text = client.get(url).text
        assert evil not in text and "<b>eve</b>" not in text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text


def test_openapi_docs(client):
    schema = client.get("/openapi.json").json()
    assert "/api/capabilities/{cap_id}/review" in schema["paths"]
    assert "/api/comparisons/{a}/{b}" in schema["paths"]
    assert "/capabilities/{cap_id}" not in schema["paths"]  # pages are not API
    docs = client.get("/docs")
    assert docs.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(a.startswith("/") for a in assets), assets  # no CDN
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_openapi_response_schemas_are_typed(client):
    schema = client.get("/openapi.json").json()
    models = schema["components"]["schemas"]

    def resolve(node):
        if "$ref" in node:
            return models[node["$ref"].rsplit("/", 1)[1]]
        if node.get("type") == "array":
            return resolve(node["items"])
        return node

    for path in (
        "/api/session",
        "/api/tools",
        "/api/tools/{slug}",
        "/api/capabilities",
        "/api/capabilities/{cap_id}",
        "/api/capabilities/{cap_id}/history",
        "/api/capabilities/{cap_id}/review",
        "/api/comparisons/{a}/{b}",
    ):
        method = "post" if path.endswith("/review") else "get"
        ok = schema["paths"][path][method]["responses"]["200"]
        body = ok["content"]["application/json"]["schema"]
        assert resolve(body).get("properties"), (path, body)
    assert "evidence" in models["CapabilityDetail"]["properties"]
    assert "rows" in models["Comparison"]["properties"]


def test_web_ui_loads_no_model_sdk(settings, store, ids, tmp_path):
    """Creating the app and serving pages and the API must not import the model SDKs."""
    script = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        from decomposer.core.config import Settings
        from decomposer.web import UISettings, create_app
        from fastapi.testclient import TestClient

        app = create_app(Settings.from_env(), UISettings(secret="s" * 32))
        c = TestClient(app, base_url="http://127.0.0.1")
        csrf = c.get("/api/session").json()["csrf_token"]
        c.post("/api/login", json={{"name": "alice"}}, headers={{"X-CSRF-Token": csrf}})
        cap = {ids["Synchronous replication"]!r}
        for url in ("/", "/tools/acmedb", "/capabilities/" + cap, "/api/tools",
                    "/api/tools/acmedb", "/api/capabilities/" + cap):
            assert c.get(url).status_code == 200, url
        banned = ("instructor", "openai", "mistralai", "decomposer.calls", "decomposer.providers")
        print(sorted(m for m in sys.modules if m.startswith(banned)))
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


def test_diff_view_after_reextraction(cli, client, ids, tmp_path, settings, monkeypatch):
    monkeypatch.setenv("DECOMPOSER_REVIEWER", "carol")
    sync = ids["Synchronous replication"]
    assert cli("approve", sync)[0] == 0
    payload = copy.deepcopy(THREE)
    payload["capabilities"][1]["description"] = "Every write is copied to three zones."
    second_run(cli, tmp_path, payload)
    csrf = login(client)
    page = client.get(f"/capabilities/{sync}")
    assert "Re-extraction proposes a change" in page.text
    assert "<ins>Every write is copied to three zones.</ins>" in page.text
    assert "Keep current" in page.text
    assert "changed" in client.get("/", params={"status": "changed"}).text
    api = client.get(f"/api/capabilities/{sync}").json()
    assert api["open_proposal"]["changes"]["description"]["new"].startswith("Every write")
    r = client.post(
        f"/capabilities/{sync}/review",
        data={"action": "approve", "version": str(api["version"]), "csrf_token": csrf},
    )
    assert r.status_code == 303
    assert cap_row(settings, sync)[0].description == "Every write is copied to three zones."


def test_tool_page_and_comparison_preview(cli, client, ids, store):
    assert cli("tool", "add", "Other DB", "--type", "API")[0] == 0
    login(client)
    assert "has no capabilities to compare" in client.get("/compare/acmedb/other-db").text
    now = utcnow()
    with store.transaction() as s:
        other = s.scalar(select(Tool).where(Tool.slug == "other-db"))
        s.add(
            Capability(
                id="cap_other",
                tool_id=other.id,
                key="backups",
                name="Backups",
                category="platform",
                description="Backups.",
                unique="u",
                vs_alternatives="v",
                status="approved",
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
    page = client.get("/tools/acmedb")
    assert page.status_code == 200
    assert "Profile" in page.text and "Scores" in page.text
    assert 'src="/compare/acmedb/other-db"' in page.text
    preview = client.get("/compare/acmedb/other-db")
    assert preview.status_code == 200 and "AcmeDB" in preview.text and "Other DB" in preview.text
    assert "default-src 'none'" in preview.headers["content-security-policy"]
    data = client.get("/api/comparisons/acmedb/other-db", params={"include_unreviewed": True})
    assert data.status_code == 200 and data.json()["kind"] == "decomposer.comparison"
    assert client.get("/api/tools/acmedb").json()["counts"]["proposed"] == 3
    assert client.get("/tools/nope").status_code == 404


def test_bind_rules_and_trusted_hosts(settings, store, ids, cli, monkeypatch):
    with pytest.raises(
        ConfigError, match=r"refusing to serve on 0\.0\.0\.0 without DECOMPOSER_UI_TOKEN"
    ):
        ui_settings({}, "0.0.0.0")
    with pytest.raises(ConfigError, match="too short"):
        ui_settings({"DECOMPOSER_UI_TOKEN": "short"}, "0.0.0.0")
    assert ui_settings({"DECOMPOSER_UI_TOKEN": TOKEN}, "0.0.0.0").token == TOKEN
    assert ui_settings({}, "127.0.0.1").token is None
    monkeypatch.delenv("DECOMPOSER_UI_TOKEN", raising=False)
    code, _, err = cli("serve", "--host", "0.0.0.0")
    assert (
        code == 1 and err.startswith("error: refusing to serve on 0.0.0.0") and err.count("\n") == 1
    )
    local = make_client(settings, store, hosts=("127.0.0.1", "localhost"))
    assert local.get("/login", headers={"host": "evil.example"}).status_code == 400
    assert local.get("/login", headers={"host": "127.0.0.1:8000"}).status_code == 200
