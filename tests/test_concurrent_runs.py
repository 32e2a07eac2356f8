"""Three real `extract` processes on one tool share one run: every job is sent once, nothing
crashes, no run is left running — on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from decomposer.store import open_store
from decomposer.store.models import Capability, ExtractionRun, Job, LLMCall
from support.fakeprovider import FakeConfig, create_app
from support.servers import serve

PAGES = 12


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, settings, monkeypatch) -> str:
    if request.param == "sqlite":
        return settings.database_url
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("DECOMPOSER_DATABASE_URL", url)
    return url


def test_three_processes_share_one_run(cli, tmp_path: Path, settings, database):
    folder = tmp_path / "pages"
    folder.mkdir()
    for i in range(PAGES):
        (folder / f"p{i}.md").write_text(
            f"# Page {i}\n\nFeature number {i} lets teams do thing {i} quickly and well.\n"
        )
    assert cli("tool", "add", "Acme")[0] == 0
    assert cli("ingest", "acme", str(folder))[0] == 0
    with serve(create_app(FakeConfig(latency_ms=150, latency_p99_ms=300))) as base:
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
        env["DECOMPOSER_DATABASE_URL"] = database
        procs = [
            subprocess.Popen(
                args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        sent = httpx.get(f"{base}/stats").json()["requests"]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "IntegrityError" not in err
    store = open_store(database)
    with store.transaction() as s:
        runs = list(s.scalars(select(ExtractionRun)))
        planned = s.scalar(select(func.count()).select_from(Job))
        logged = s.scalar(select(func.sum(LLMCall.attempts)).where(~LLMCall.cache_hit))
        capabilities = s.scalar(select(func.count()).select_from(Capability))
    store.dispose()
    assert [r.status for r in runs] == ["succeeded"]
    assert planned == PAGES
    assert sent == planned, "each job was sent exactly once"
    assert logged == sent
    assert capabilities == PAGES
