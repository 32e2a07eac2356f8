"""The review server under the issue-10 attacks, measured on a real ``decomposer serve``
process (uvicorn, SQLite store with the demo's replayed extraction):

* ``huge-body``: a 300 MB ``POST /api/login``, streamed (chunked) and with its length declared:
  status, bytes the client got to send, and the server's resident memory before and after;
* ``locked``: another connection holds the SQLite write lock (``BEGIN IMMEDIATE``); a review
  is sent (by the form, then by the JSON API) and, while it waits, ``GET /login``: statuses
  and seconds;
* ``guessing``: 300 wrong UI tokens from one address, then the right one: statuses, seconds.

    .venv/bin/python scripts/bench_review_server.py [--mb 300]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from machine import describe

REPO = Path(__file__).resolve().parents[1]
PY = [sys.executable, "-m", "decomposer"]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
VERSION = re.compile(r'name="version" value="(\d+)"')


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*PY, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def login_csrf(client: httpx.Client) -> str:
    return str(client.get("/api/session").json()["csrf_token"])


def huge_body(base: str, mb: int, pid: int) -> None:
    before = rss_mb(pid)
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        block = b"x" * (1024 * 1024)
        for _ in range(mb):
            sent += len(block)
            yield block

    for declared in (False, True):
        sent = 0
        headers = {"Content-Type": "application/json"}
        if declared:
            headers["Content-Length"] = str(mb * 1024 * 1024)
        started = time.perf_counter()
        try:
            with httpx.Client(base_url=base, timeout=120) as c:
                status = str(c.post("/api/login", content=chunks(), headers=headers).status_code)
        except httpx.HTTPError as exc:  # the server answered and closed while we still sent
            status = f"closed ({type(exc).__name__})"
        seconds = time.perf_counter() - started
        after = rss_mb(pid)
        kind = "declared length" if declared else "chunked"
        print(
            f"| huge-body ({kind}) | {status} | sent {sent / 2**20:.0f} of {mb} MB | "
            f"RSS {before[0]:.0f} -> {after[0]:.0f} MB (peak {after[1]:.0f}) | {seconds:.2f} s |"
        )


def form_session(base: str, token: str, cap_id: str) -> tuple[httpx.Client, dict[str, str]]:
    """A reviewer logged in through the form, and the review form's fields for ``cap_id``."""
    client = httpx.Client(base_url=base, timeout=120)
    page = client.get("/login").text
    csrf = CSRF.search(page).group(1)  # type: ignore[union-attr]
    client.post("/login", data={"csrf_token": csrf, "name": "bench", "token": token, "next": "/"})
    page = client.get(f"/capabilities/{cap_id}").text
    csrf = CSRF.search(page).group(1)  # type: ignore[union-attr]
    version = VERSION.search(page).group(1)  # type: ignore[union-attr]
    return client, {"csrf_token": csrf, "action": "approve", "version": version}


def locked(base: str, db: Path, token: str, bearer: str, cap_id: str) -> None:
    """A review sent while another connection holds the write lock, by the form (a session)
    and by the JSON API (a bearer token); ``GET /login`` is sent while each one waits."""
    client, form = form_session(base, token, cap_id)
    sends = {
        "form": lambda: client.post(f"/capabilities/{cap_id}/review", data=form),
        "API": lambda: client.post(
            f"/api/capabilities/{cap_id}/review",
            json={"action": "approve", "version": int(form["version"])},
            headers={"Authorization": f"Bearer {bearer}"},
        ),
    }
    result: dict[str, tuple[int, str | None, float]] = {}

    def review(how: str, send: Callable[[], httpx.Response]) -> None:
        started = time.perf_counter()
        r = send()
        result[how] = (r.status_code, r.headers.get("retry-after"), time.perf_counter() - started)

    for how, send in sends.items():
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        thread = threading.Thread(target=review, args=(how, send))
        thread.start()
        time.sleep(0.2)  # the review is waiting for the lock
        started = time.perf_counter()
        with httpx.Client(base_url=base, timeout=120) as c:
            status = c.get("/login").status_code
        login_s = time.perf_counter() - started
        thread.join()
        holder.rollback()
        holder.close()
        code, retry, seconds = result[how]
        print(f"| locked: GET /login while a {how} review waits | {status} | | | {login_s:.2f} s |")
        print(f"| locked: {how} review POST | {code} (Retry-After {retry}) | | | {seconds:.2f} s |")
    client.close()


def guessing(base: str, token: str, tries: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as c:
        csrf = login_csrf(c)
        statuses: Counter[int] = Counter()
        started = time.perf_counter()
        for i in range(tries):
            r = c.post(
                "/api/login",
                json={"name": "eve", "token": f"wrong-{i:04d}-guess"},
                headers={"X-CSRF-Token": csrf},
            )
            statuses[r.status_code] += 1
        seconds = time.perf_counter() - started
        right = c.post(
            "/api/login", json={"name": "eve", "token": token}, headers={"X-CSRF-Token": csrf}
        )
    summary = ", ".join(f"{n}x {s}" for s, n in sorted(statuses.items()))
    print(
        f"| guessing: {tries} wrong tokens, then the right one | {summary}; then "
        f"{right.status_code} (Retry-After {right.headers.get('retry-after')}) | | | "
        f"{seconds:.2f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--guesses", type=int, default=300)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-review-"))
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "DECOMPOSER_HOME": str(home), "DECOMPOSER_UI_TOKEN": token}
    env.pop("MISTRAL_API_KEY", None)
    run(env, "tool", "add", "Mistral API", "--type", "API")
    run(env, "ingest", "mistral-api", str(REPO / "fixtures" / "docs" / "mistral-api"))
    run(env, "extract", "mistral-api", "--replay", str(REPO / "fixtures" / "recordings"))
    bearer = next(
        w for w in run(env, "token", "create", "--name", "bench").split() if w.startswith("dcp_")
    )
    cap = json.loads(run(env, "capabilities", "mistral-api", "--json"))[0]
    port = free_port()
    server = subprocess.Popen(
        [*PY, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/login", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        print(f"machine: {describe()}, load {os.getloadavg()}")
        print("| scenario | status | body | server memory | seconds |")
        print("|---|---|---|---|---|")
        huge_body(base, args.mb, server.pid)
        locked(base, home / "decomposer.db", token, bearer, cap["id"])
        guessing(base, token, args.guesses)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
