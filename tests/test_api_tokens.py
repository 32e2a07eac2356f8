"""API tokens (issue 13): ``decomposer token create|list|revoke``, stored as SHA-256 only, sent
as ``Authorization: Bearer``; a bearer request needs no CSRF token, a revoked one gets 401."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from decomposer.store import open_store
from decomposer.store.tokens import ApiToken
from test_review import cap_row
from test_web import client, ids, login, make_client  # noqa: F401  (fixtures)


def _create(cli, name: str) -> str:
    code, out, err = cli("token", "create", "--name", name)
    assert code == 0, err
    secret = next(line for line in out.splitlines() if line.startswith("dcp_"))
    assert len(secret) > 40
    return secret


def test_token_cli_stores_only_a_hash(cli, settings):
    secret = _create(cli, "nightly")
    with open_store(settings.database_url).transaction() as s:
        rows = list(s.scalars(select(ApiToken)))
    assert len(rows) == 1 and rows[0].token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr([(r.name, r.hint, r.token_hash) for r in rows])
    listed = cli.json("token", "list")
    assert [t["name"] for t in listed] == ["nightly"] and "token" not in listed[0]
    assert secret not in cli("token", "list")[1]
    code, _, err = cli("token", "create", "--name", "nightly")
    assert code == 1 and "already exists" in err and "Traceback" not in err
    assert cli("token", "revoke", "nightly")[0] == 0
    assert cli.json("token", "list") == []
    assert [t["name"] for t in cli.json("token", "list", "--revoked")] == ["nightly"]
    code, _, err = cli("token", "revoke", "nightly")
    assert code == 1 and "no live token" in err
    assert cli("token", "create", "--name", "nightly")[0] == 0  # the name is free again
    assert cli("token", "create", "--name", "  ")[0] == 1


def test_bearer_token_uses_the_api_without_csrf_until_revoked(cli, client, ids, settings):  # noqa: F811
    secret = _create(cli, "approver bot")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/tools").status_code == 401  # no session, no token
    tools = client.get("/api/tools", headers=bearer)
    assert tools.status_code == 200 and tools.json()[0]["slug"] == "acmedb"
    caps = client.get("/api/capabilities", headers=bearer).json()
    cid = caps[0]["id"]
    r = client.post(
        f"/api/capabilities/{cid}/review",
        json={"action": "approve", "version": caps[0]["version"]},
        headers=bearer,
    )
    assert r.status_code == 200, r.text
    cap, events = cap_row(settings, cid)
    assert cap.status == "approved" and events[-1].actor == "token:approver bot"
    rest = [{"id": c["id"], "version": c["version"]} for c in caps[1:]]
    r = client.post(
        "/api/capabilities/bulk", json={"action": "reject", "items": rest}, headers=bearer
    )
    assert r.status_code == 200 and len(r.json()) == 2
    used = cli.json("token", "list")[0]
    assert used["last_used_at"] is not None
    assert cli("token", "revoke", "approver bot")[0] == 0
    r = client.get("/api/tools", headers=bearer)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "revoked" in r.json()["detail"]
    for bad in ("Bearer nope", "Basic abc", "Bearer ", f"Bearer {secret}x"):
        assert client.get("/api/tools", headers={"Authorization": bad}).status_code == 401


def test_browser_sessions_still_need_csrf(client, ids):  # noqa: F811
    login(client)
    cap = client.get("/api/capabilities").json()[0]
    r = client.post(
        f"/api/capabilities/{cap['id']}/review", json={"action": "approve", "version": 1}
    )
    assert r.status_code == 403
