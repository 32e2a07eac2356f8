"""Durable jobs: resume after failure and after kill -9, safe claiming, the jobs listing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from conftest import CLI, MISTRAL_URL, PROFILE_NONE, SECRET, capability, ok
from decomposer.extraction import jobs
from decomposer.store import open_store
from decomposer.store.models import Capability, ExtractionRun, Job, LLMCall, Tool
from support.fakeprovider import completion_for
from support.servers import serve

PAGES = {
    f"p{i}.md": f"# Page {i}\n\nFeature number {i} lets teams do thing {i} quickly and well.\n"
    for i in range(6)
}


def grounded_answer(request: httpx.Request) -> httpx.Response:
    """Quote whichever page the request carries, so every answer passes grounding."""
    text = json.loads(request.content)["messages"][1]["content"]
    i = next(k for k in range(6) if f"Feature number {k} " in text)
    quote = f"Feature number {i} lets teams do thing {i} quickly"
    return ok({"capabilities": [capability(f"Thing {i}", quote)], "profile": PROFILE_NONE})


@pytest.fixture
def pages(cli: CLI, tmp_path: Path) -> Path:
    folder = tmp_path / "pages"
    folder.mkdir()
    for name, text in PAGES.items():
        (folder / name).write_text(text)
    assert cli("tool", "add", "Acme")[0] == 0
    assert cli("ingest", "acme", str(folder))[0] == 0
    return folder


def rows(settings, model):
    store = open_store(settings.database_url)
    with store.transaction() as s:
        out = list(s.scalars(select(model)))
    store.dispose()
    return out


def test_failed_run_resumes_without_resending_finished_jobs(cli, pages, settings, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    seen: list[bytes] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        if len(seen) == 4:
            return httpx.Response(400, json={"message": "bad request"})
        return grounded_answer(request)

    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(side_effect=flaky)
        code, _, err = cli("extract", "acme", "--pack-tokens", "1", "--concurrency", "1")
    assert code == 1 and "HTTP 400" in err
    states = sorted(j.state for j in rows(settings, Job))
    assert states == ["done", "done", "done", "failed", "queued", "queued"]
    assert rows(settings, Capability) == []
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(side_effect=grounded_answer)
        code, _, err = cli("extract", "acme", "--pack-tokens", "1")
    assert code == 0, err
    assert route.call_count == 3  # the failed job and the two never started
    assert not {c.request.content for c in route.calls} & set(seen[:3])
    [run] = rows(settings, ExtractionRun)
    assert run.status == "succeeded"
    assert len(rows(settings, Capability)) == 6
    listed = cli.json("jobs", "--run", str(run.id))
    assert [j["state"] for j in listed] == ["done"] * 6
    assert [j["attempts"] for j in listed].count(2) == 1


def test_changed_settings_start_a_new_run(cli, pages, settings, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(return_value=httpx.Response(400, json={}))
        assert cli("extract", "acme", "--pack-tokens", "1")[0] == 1
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(side_effect=grounded_answer)
        assert (
            cli("extract", "acme", "--pack-tokens", "1", "--model", "mistral-large-latest")[0] == 0
        )
    assert [r.status for r in rows(settings, ExtractionRun)] == ["failed", "succeeded"]


def run_with_jobs(store, count: int, now: datetime) -> int:
    """A running extraction run with ``count`` queued jobs, straight in the store."""
    with store.transaction() as s:
        tool = Tool(slug="t", name="T", created_at=now)
        s.add(tool)
        s.flush()
        run = ExtractionRun(
            tool_id=tool.id,
            provider="p",
            model="m",
            mode="json_schema",
            temperature=0.0,
            prompt_name="extract",
            prompt_version="v1",
            prompt_hash="h",
            status="running",
            started_at=now,
        )
        s.add(run)
        s.flush()
        jobs.create_jobs(s, run.id, [([f"c{i}"], f"h{i}", 10) for i in range(count)], now)
        return run.id


def test_claims_never_hand_out_a_job_twice(store):
    now = datetime.now(UTC)
    run_id = run_with_jobs(store, 40, now)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := jobs.claim(store, run_id, name, datetime.now(UTC))) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40


def test_abandoned_running_jobs_are_requeued(store):
    now = datetime.now(UTC)
    run_id = run_with_jobs(store, 4, now)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = jobs.worker_id().rpartition(":")[0]
    holders = [f"{host}:{dead.pid}", jobs.worker_id(), "elsewhere:1", "elsewhere:2"]
    leases = [
        now + timedelta(hours=1),
        now + timedelta(hours=1),
        now - timedelta(seconds=1),
        now + timedelta(hours=1),
    ]
    with store.transaction() as s:
        for job, holder, lease in zip(
            s.scalars(select(Job).order_by(Job.position)), holders, leases, strict=True
        ):
            job.state, job.worker, job.lease_until = "running", holder, lease
    assert jobs.requeue(store, run_id, now) == 2  # the dead local process and the expired lease
    with store.transaction() as s:
        states = [j.state for j in s.scalars(select(Job).order_by(Job.position))]
    assert states == ["queued", "running", "queued", "running"]


def hanging_provider(answered: list[str], release: threading.Event, after: int) -> FastAPI:
    """Answers ``after`` requests, then hangs every further one until ``release`` is set."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> JSONResponse:
        body = await request.json()
        answered.append(json.dumps(body))
        if len(answered) > after:
            while not release.is_set():
                await asyncio.sleep(0.05)
        return JSONResponse(completion_for(body, 100))

    @app.get("/stats")
    async def stats() -> dict[str, int]:
        return {"answered": len(answered)}

    return app


def test_kill_9_mid_run_then_resume(cli, pages, settings):
    """A real process killed with SIGKILL: nothing half-written, and the re-run re-sends only
    what had not finished."""
    answered: list[str] = []
    release = threading.Event()
    with serve(hanging_provider(answered, release, after=3)) as base:
        args = [
            sys.executable,
            "-m",
            "decomposer",
            "extract",
            "acme",
            "--provider",
            "openai-compatible",
            "--base-url",
            f"{base}/v1",
            "--model",
            "m",
            "--pack-tokens",
            "1",
            "--concurrency",
            "1",
        ]
        env = {**os.environ, "DECOMPOSER_HOME": str(settings.home)}
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # A hang guard, not a measurement: on a loaded 2-core machine starting the child and
        # importing the SDKs alone can take tens of seconds.
        deadline = time.monotonic() + 180
        while len(answered) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(answered) == 4  # three answered, the fourth in flight and hanging
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert rows(settings, Capability) == []
        assert sorted(j.state for j in rows(settings, Job)) == [
            "done",
            "done",
            "done",
            "queued",
            "queued",
            "running",
        ]
        release.set()
        before = len(answered)
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert len(answered) - before == 3  # the interrupted job and the two never started
    [run] = rows(settings, ExtractionRun)
    assert run.status == "succeeded"
    assert len(rows(settings, Capability)) == 6
    store = open_store(settings.database_url)
    with store.transaction() as s:
        billed = s.scalar(select(func.sum(LLMCall.attempts)).where(~LLMCall.cache_hit))
        pending = s.scalar(
            select(func.count()).select_from(LLMCall).where(LLMCall.outcome == "pending")
        )
    store.dispose()
    # Every request the provider saw is logged: the one cut off by the kill as "pending".
    assert billed == len(answered) == 7
    assert pending == 1
    [listed] = cli.json("runs")
    assert (listed["calls"], listed["attempts"], listed["pending"]) == (7, 7, 1)


def test_refresh_asks_every_request_again(cli, pages, settings, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    with respx.mock() as mock:
        mock.post(MISTRAL_URL).mock(side_effect=grounded_answer)
        assert cli("extract", "acme", "--pack-tokens", "1")[0] == 0
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(MISTRAL_URL).mock(side_effect=grounded_answer)
        assert cli("extract", "acme", "--pack-tokens", "1")[0] == 0
    assert route.call_count == 0, "answered from the cache"
    for flag in ("--refresh", "--no-cache"):
        with respx.mock() as mock:
            route = mock.post(MISTRAL_URL).mock(side_effect=grounded_answer)
            code, _, err = cli("extract", "acme", "--pack-tokens", "1", flag)
        assert code == 0, err
        assert route.call_count == 6, flag


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_gives_back_the_jobs_in_flight(cli, pages, settings, sig):
    answered: list[str] = []
    release = threading.Event()
    with serve(hanging_provider(answered, release, after=3)) as base:
        args = [
            sys.executable,
            "-m",
            "decomposer",
            "extract",
            "acme",
            "--provider",
            "openai-compatible",
            "--base-url",
            f"{base}/v1",
            "--model",
            "m",
            "--pack-tokens",
            "1",
            "--concurrency",
            "2",
        ]
        env = {**os.environ, "DECOMPOSER_HOME": str(settings.home)}
        proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while len(answered) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        # three answered, two in flight and hanging
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        release.set()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in err
    [run] = rows(settings, ExtractionRun)
    assert run.status == "interrupted"
    states = sorted(j.state for j in rows(settings, Job))
    assert states == ["done", "done", "done", "queued", "queued", "queued"]


def test_an_expired_lease_is_taken_over_and_a_heartbeat_keeps_it(store):
    now = datetime.now(UTC)
    run_id = run_with_jobs(store, 2, now)
    first = jobs.claim(store, run_id, "elsewhere:1", now)
    second = jobs.claim(store, run_id, "elsewhere:2", now)
    assert first is not None and second is not None
    assert jobs.claim(store, run_id, "me:3", now) is None, "both leases are live"
    later = now + jobs.DEFAULT_LEASE - timedelta(seconds=1)
    assert jobs.renew(store, second.id, "elsewhere:2", later)  # the second holder is alive
    expired = now + jobs.DEFAULT_LEASE + timedelta(seconds=1)
    taken = jobs.claim(store, run_id, "me:3", expired)
    assert taken is not None and taken.id == first.id and taken.worker == "me:3"
    assert jobs.claim(store, run_id, "me:3", expired) is None
    assert not jobs.renew(store, first.id, "elsewhere:1", expired), "the old holder lost it"
    assert jobs.claim_job(store, second.id, "me:3", expired) is None
    assert jobs.lease_left(store, second.id, expired) == pytest.approx(
        (jobs.DEFAULT_LEASE - timedelta(seconds=2)).total_seconds()
    )


def test_requeue_stale_from_the_command_line(cli, store, settings):
    now = datetime.now(UTC)
    run_with_jobs(store, 3, now)
    with store.transaction() as s:
        for job, lease in zip(
            s.scalars(select(Job).order_by(Job.position)),
            [now - timedelta(minutes=5), now + timedelta(hours=1), None],
            strict=True,
        ):
            if lease is not None:
                job.state, job.worker, job.lease_until = "running", "elsewhere:1", lease
    code, out, err = cli("jobs", "--requeue-stale")
    assert code == 0, err
    assert "1 stale job(s) queued again" in out
    with store.transaction() as s:
        states = [j.state for j in s.scalars(select(Job).order_by(Job.position))]
    assert states == ["queued", "running", "queued"]


def test_a_worker_loads_only_its_jobs_chunks(pages, settings):
    """A Celery task reads its own job's chunks, the same ones the whole run's inputs hold."""
    from decomposer.calls.prompts import load_prompt
    from decomposer.extraction.inputs import load_inputs, load_job
    from decomposer.extraction.run import plan_run
    from decomposer.providers.base import ProviderConfig

    store = open_store(settings.database_url)
    cfg = ProviderConfig("mistral", "mistral-small-latest", "json_schema")
    run_id = plan_run(store, cfg, load_prompt(), "acme", pack_tokens=1, now=datetime.now(UTC))
    with store.transaction() as s:
        whole = load_inputs(s, run_id)
        for job_id, group in whole.groups.items():
            name, mine = load_job(s, run_id, job_id)
            assert name == "Acme"
            assert [(c.id, src) for c, src in mine] == [(c.id, src) for c, src in group]
    store.dispose()
