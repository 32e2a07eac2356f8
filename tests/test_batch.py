"""Batch APIs: submit, poll, collect and re-queue, with respx on both providers' files and batch
endpoints so the real Mistral and OpenAI SDKs run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import typer
from sqlalchemy import select

from conftest import MISTRAL_URL, OPENAI_URL, PROFILE_NONE, SECRET, capability, completion
from decomposer.calls.runtime import RunSetup
from decomposer.cli.app import Env
from decomposer.core.clock import utcnow
from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError, NotFoundError
from decomposer.extraction import batch
from decomposer.extraction.run import context_for, load_inputs
from decomposer.extraction.task import model_caller
from decomposer.ingest.documents import ingest
from decomposer.providers.base import resolve
from decomposer.store import Store
from decomposer.store.batch_models import BatchRecord
from decomposer.store.models import Capability, ExtractionRun, Job, LLMCall
from decomposer.store.tools import add_tool

N = 6
PAGES = {
    f"p{i}.md": f"# Page {i}\n\nFeature number {i} lets teams do thing {i} quickly and well.\n"
    for i in range(N)
}
BASES = {"mistral": "https://api.mistral.ai/v1", "openai": "https://api.openai.com/v1"}
MODELS = {"mistral": "mistral-small-latest", "openai": "gpt-4o-mini"}
KEYS = {"mistral": "MISTRAL_API_KEY", "openai": "OPENAI_API_KEY"}
PRICES = {"mistral": (0.1, 0.3), "openai": (0.15, 0.6)}
DONE = {"mistral": "SUCCESS", "openai": "completed"}


def page_of(text: str) -> int:
    return next(k for k in range(N) if f"Feature number {k} " in text)


def grounded(i: int) -> dict[str, Any]:
    quote = f"Feature number {i} lets teams do thing {i} quickly"
    return {"capabilities": [capability(f"Thing {i}", quote)], "profile": PROFILE_NONE}


def ungrounded(i: int) -> dict[str, Any]:
    return {
        "capabilities": [capability(f"Thing {i}", f"Thing {i} is the fastest on earth")],
        "profile": PROFILE_NONE,
    }


def inline_answer(request: httpx.Request) -> httpx.Response:
    text = json.loads(request.content)["messages"][1]["content"]
    return httpx.Response(200, json=completion(grounded(page_of(text))))


def ok_line(cid: str, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "id": f"req-{cid}",
        "custom_id": cid,
        "response": {"status_code": 200, "request_id": "r1", "body": completion(payload, **kw)},
        "error": None,
    }


def http_error_line(cid: str, status: int = 500) -> dict[str, Any]:
    body = {"error": {"message": "server error", "type": "server_error", "code": None}}
    return {
        "id": f"req-{cid}",
        "custom_id": cid,
        "response": {"status_code": status, "body": body},
        "error": None,
    }


def expired_line(cid: str) -> dict[str, Any]:
    return {
        "id": f"req-{cid}",
        "custom_id": cid,
        "response": None,
        "error": {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        },
    }


def multipart_file(request: httpx.Request) -> tuple[bytes, dict[str, str]]:
    """The uploaded file and the other form fields of a multipart request."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.content)
    content, fields = b"", {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if part.get_filename():
            content = data
        else:
            fields[str(name)] = data.decode()
    return content, fields


@dataclass
class FakeBatches:
    """One provider's files and batch endpoints with state: uploads, batches, polls, results."""

    provider: str
    mock: respx.MockRouter
    uploads: list[list[dict[str, Any]]] = field(default_factory=list)
    upload_fields: list[dict[str, str]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    fail_polls: int = 0
    deleted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        base = BASES[self.provider]
        jobs_path = "batch/jobs" if self.provider == "mistral" else "batches"
        self.upload_route = self.mock.post(f"{base}/files").mock(side_effect=self._upload)
        self.create_route = self.mock.post(f"{base}/{jobs_path}").mock(side_effect=self._create)
        self.get_route = self.mock.get(url__regex=rf"^{base}/{jobs_path}/[^/]+$").mock(
            side_effect=self._get
        )
        self.download_route = self.mock.get(url__regex=rf"^{base}/files/[^/]+/content$").mock(
            side_effect=self._download
        )
        self.delete_route = self.mock.delete(url__regex=rf"^{base}/files/[^/]+$").mock(
            side_effect=self._delete
        )
        self.cancel_route = self.mock.post(url__regex=rf"^{base}/{jobs_path}/[^/]+/cancel$").mock(
            side_effect=self._cancel
        )

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [line for upload in self.uploads for line in upload]

    def _upload(self, request: httpx.Request) -> httpx.Response:
        content, fields = multipart_file(request)
        self.uploads.append([json.loads(line) for line in content.decode().splitlines()])
        self.upload_fields.append(fields)
        file_id = f"file-in-{len(self.uploads)}"
        body: dict[str, Any] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": 1765000000,
            "filename": "in.jsonl",
            "purpose": "batch",
        }
        if self.provider == "mistral":
            body.update(sample_type="batch_request", source="upload")
        else:
            body.update(status="processed")
        return httpx.Response(200, json=body)

    def _create(self, request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        self.created.append(sent)
        batch_id = f"batch-{len(self.created)}"
        requests = len(self.uploads[-1])
        if self.provider == "mistral":
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "input_files": sent["input_files"],
                "endpoint": sent["endpoint"],
                "model": sent["model"],
                "errors": [],
                "status": "QUEUED",
                "created_at": 1765000000,
                "total_requests": requests,
                "completed_requests": 0,
                "succeeded_requests": 0,
                "failed_requests": 0,
            }
        else:
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": sent["endpoint"],
                "completion_window": "24h",
                "created_at": 1765000000,
                "input_file_id": sent["input_file_id"],
                "status": "validating",
                "request_counts": {"total": requests, "completed": 0, "failed": 0},
            }
        return httpx.Response(200, json=self.batches[batch_id])

    def _get(self, request: httpx.Request) -> httpx.Response:
        if self.fail_polls:
            self.fail_polls -= 1
            return httpx.Response(503, json={"message": "try later"})
        batch_id = request.url.path.rsplit("/", 1)[-1]
        if self.polls:
            self.batches[batch_id]["status"] = self.polls.pop(0)
        return httpx.Response(200, json=self.batches[batch_id])

    def _delete(self, request: httpx.Request) -> httpx.Response:
        file_id = request.url.path.rsplit("/", 1)[-1]
        self.deleted.append(file_id)
        return httpx.Response(200, json={"id": file_id, "object": "file", "deleted": True})

    def _cancel(self, request: httpx.Request) -> httpx.Response:
        batch_id = request.url.path.split("/")[-2]
        cancelling = "CANCELLATION_REQUESTED" if self.provider == "mistral" else "cancelling"
        self.batches[batch_id]["status"] = cancelling
        return httpx.Response(200, json=self.batches[batch_id])

    def _download(self, request: httpx.Request) -> httpx.Response:
        file_id = request.url.path.split("/")[-2]
        return httpx.Response(
            200,
            content=self.files[file_id].encode(),
            headers={"content-type": "application/octet-stream"},
        )

    def finish(
        self,
        status: str,
        outputs: list[dict[str, Any]],
        errors: list[dict[str, Any]] = (),  # type: ignore[assignment]
        batch_id: str = "batch-1",
    ) -> None:
        """Put a batch in a final state with these output and error lines."""
        record = self.batches[batch_id]
        record["status"] = status
        out_key, err_key = (
            ("output_file", "error_file")
            if self.provider == "mistral"
            else ("output_file_id", "error_file_id")
        )
        if outputs:
            self.files[f"out-{batch_id}"] = "".join(json.dumps(o) + "\n" for o in outputs)
            record[out_key] = f"out-{batch_id}"
        if errors:
            self.files[f"err-{batch_id}"] = "".join(json.dumps(e) + "\n" for e in errors)
            record[err_key] = f"err-{batch_id}"

    def answers(self, pick: Any = None) -> list[dict[str, Any]]:
        """A grounded answer line for every uploaded request (or those ``pick`` chooses)."""
        out = []
        for line in self.lines:
            i = page_of(line["body"]["messages"][1]["content"])
            if pick is None or pick(i):
                out.append(ok_line(line["custom_id"], grounded(i)))
        return out

    def cid(self, page: int) -> str:
        return next(
            line["custom_id"]
            for line in self.lines
            if page_of(line["body"]["messages"][1]["content"]) == page
        )


@pytest.fixture
def pages(store: Store, tmp_path: Path) -> Path:
    folder = tmp_path / "pages"
    folder.mkdir()
    for name, text in PAGES.items():
        (folder / name).write_text(text)
    with store.transaction() as session:
        add_tool(session, "Acme", now=utcnow())
    ingest(store, "acme", [str(folder)], now=utcnow())
    return folder


def setup_for(settings: Settings, provider: str, **kw: Any) -> RunSetup:
    return RunSetup(cfg=resolve(settings, provider, **kw), key=SECRET)


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for variable in KEYS.values():
        monkeypatch.setenv(variable, SECRET)
    return Settings.from_env()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


async def submit(store: Store, settings: Settings, provider: str, **kw: Any) -> Any:
    async with httpx.AsyncClient() as http:
        return await batch.submit(
            store, settings, setup_for(settings, provider, **kw), "acme", pack_tokens=1, http=http
        )


async def collect(store: Store, settings: Settings, target: str | None = None, **kw: Any) -> Any:
    async with httpx.AsyncClient() as http:
        return await batch.collect(store, settings, target, http=http, **kw)


async def poll(store: Store, settings: Settings, target: str | None = None, **kw: Any) -> Any:
    async with httpx.AsyncClient() as http:
        return await batch.status(store, settings, target, http=http, **kw)


def job_rows(store: Store) -> list[Job]:
    with store.transaction() as session:
        return list(session.scalars(select(Job).order_by(Job.position)))


def call_rows(store: Store) -> list[LLMCall]:
    with store.transaction() as session:
        return list(session.scalars(select(LLMCall).order_by(LLMCall.id)))


def run_row(store: Store) -> ExtractionRun:
    with store.transaction() as session:
        return session.scalars(select(ExtractionRun).order_by(ExtractionRun.id.desc())).first()


def capability_names(store: Store) -> set[str]:
    with store.transaction() as session:
        return {c.name for c in session.scalars(select(Capability))}


async def extract_inline(store: Store, settings: Settings, provider: str) -> Any:
    """A normal ``extract`` of the same run, answering every chat request with grounded JSON."""
    from decomposer.extraction.run import run_extraction

    async with model_caller(settings, store, setup_for(settings, provider)) as caller:
        return await run_extraction(caller, "acme", pack_tokens=1)


# --- submit -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_submit_uploads_one_line_per_job_and_holds_the_jobs(
    provider, store, keyed, pages, mock
):
    fake = FakeBatches(provider, mock)
    sub = await submit(store, keyed, provider)
    assert sub.batch_ids == ["batch-1"] and sub.requests == N and sub.cached == 0
    assert [f["purpose"] for f in fake.upload_fields] == ["batch"]
    rows = job_rows(store)
    assert [line["custom_id"] for line in fake.lines] == [f"job-{j.id}" for j in rows]
    for line in fake.lines:
        body = line["body"]
        assert body["temperature"] == 0.0 and body["max_tokens"] == 4096
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        spec = body["response_format"]["json_schema"]
        assert body["response_format"]["type"] == "json_schema" and spec["name"] == "Extraction"
        assert spec["schema"]["additionalProperties"] is False
        if provider == "openai":
            assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions")
            assert body["model"] == "gpt-4o-mini" and "strict" not in spec
        else:
            assert set(line) == {"custom_id", "body"}
            assert "model" not in body and spec["strict"] is True
    [created] = fake.created
    if provider == "mistral":
        assert created["endpoint"] == "/v1/chat/completions"
        assert created["input_files"] == ["file-in-1"] and created["model"] == MODELS[provider]
    else:
        assert created["completion_window"] == "24h"
        assert created["endpoint"] == "/v1/chat/completions"
        assert created["input_file_id"] == "file-in-1"
    assert {(j.state, j.worker, j.batch_id, j.attempts) for j in rows} == {
        ("running", "batch:batch-1", "batch-1", 1)
    }
    with store.transaction() as session:
        [record] = session.scalars(select(BatchRecord))
        assert (record.provider, record.status, record.requests) == (
            provider,
            "QUEUED" if provider == "mistral" else "validating",
            N,
        )
    assert call_rows(store) == []
    assert run_row(store).status == "running"


@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_batch_body_is_the_request_the_inline_path_sends(provider, store, keyed, pages):
    """Same messages, sampling and response format as Instructor's json_schema call."""
    with respx.mock(assert_all_called=False) as router:
        fake = FakeBatches(provider, router)
        await submit(store, keyed, provider)
    with store.transaction() as session:
        run_id = run_row(store).id
        inputs = load_inputs(session, run_id)
    with respx.mock() as router:
        url = MISTRAL_URL if provider == "mistral" else OPENAI_URL
        route = router.post(url).mock(side_effect=inline_answer)
        async with model_caller(keyed, store, setup_for(keyed, provider)) as caller:
            job_id = job_rows(store)[0].id
            await caller.extract(
                context_for(inputs.tool_name, inputs.groups[job_id]), run_id=None, chunk_id=None
            )
    inline = json.loads(route.calls[0].request.content)
    line = fake.lines[0]["body"]
    for key in ("messages", "response_format", "temperature", "max_tokens"):
        assert line[key] == inline[key], key
    if provider == "openai":
        assert line["model"] == inline["model"]


async def test_cached_answers_are_not_sent_again(store, keyed, pages, mock):
    mock.post(MISTRAL_URL).mock(side_effect=inline_answer)
    await extract_inline(store, keyed, "mistral")
    (pages / "p2.md").write_text(PAGES["p2.md"] + "\nFeature number 2 also exports CSV.\n")
    ingest(store, "acme", [str(pages)], now=utcnow())
    fake = FakeBatches("mistral", mock)
    sub = await submit(store, keyed, "mistral")
    assert (sub.requests, sub.cached) == (1, N - 1)
    assert [page_of(line["body"]["messages"][1]["content"]) for line in fake.lines] == [2]
    hits = [c for c in call_rows(store) if c.run_id == sub.run_id]
    assert [c.outcome for c in hits] == ["cache_hit"] * (N - 1)


async def test_openai_input_is_split_into_files_within_the_line_limit(
    store, keyed, pages, mock, monkeypatch
):
    monkeypatch.setitem(batch.LIMITS, "openai", batch.FileLimits(lines=4, bytes=10**9))
    fake = FakeBatches("openai", mock)
    sub = await submit(store, keyed, "openai")
    assert sub.batch_ids == ["batch-1", "batch-2"]
    assert [len(u) for u in fake.uploads] == [4, 2]
    assert [c["input_file_id"] for c in fake.created] == ["file-in-1", "file-in-2"]
    assert [j.batch_id for j in job_rows(store)] == ["batch-1"] * 4 + ["batch-2"] * 2


def test_split_respects_lines_and_bytes():
    lines = [(i, "x" * 10 + "\n") for i in range(7)]
    assert [len(f) for f in batch.FileLimits(3, 10**6).split(lines)] == [3, 3, 1]
    assert [len(f) for f in batch.FileLimits(100, 25).split(lines)] == [2, 2, 2, 1]


async def test_openai_compatible_has_no_batch_api_and_nothing_is_written(store, keyed, pages):
    setup = setup_for(keyed, "openai-compatible", model="m", base_url="http://127.0.0.1:9/v1")
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError, match="no Batch API"):
            await batch.submit(store, keyed, setup, "acme", pack_tokens=1, http=http)
    assert job_rows(store) == []


async def test_failed_upload_gives_the_jobs_back(store, keyed, pages, mock):
    mock.post(f"{BASES['openai']}/files").mock(return_value=httpx.Response(401, json={}))
    with pytest.raises(batch.BatchAPIError, match="uploading the input file failed: HTTP 401"):
        await submit(store, keyed, "openai")
    assert {(j.state, j.worker, j.batch_id) for j in job_rows(store)} == {("queued", None, None)}


# --- status and polling -------------------------------------------------------------------


async def test_status_waits_with_exponential_backoff(store, keyed, pages, mock, fake_sleep, sleeps):
    fake = FakeBatches("mistral", mock)
    await submit(store, keyed, "mistral")
    fake.polls = ["QUEUED", "RUNNING", "RUNNING", "SUCCESS"]
    fake.fail_polls = 1  # a 503 is retried at once (backoff with jitter), then polling goes on
    [info] = await poll(store, keyed, wait=True, sleep=fake_sleep)
    assert (info.status, info.terminal, info.collected) == ("SUCCESS", True, False)
    assert 1.0 <= sleeps[0] <= 2.0 and sleeps[1:] == [10.0, 20.0, 40.0]
    assert fake.get_route.call_count == 5


async def test_waiting_is_bounded(store, keyed, pages, mock, fake_sleep, sleeps):
    fake = FakeBatches("openai", mock)
    await submit(store, keyed, "openai")
    fake.polls = ["in_progress"] * 50
    backoff = batch.Backoff(initial_s=10, factor=2, max_s=25, deadline_s=60)
    [info] = await poll(store, keyed, "batch-1", wait=True, sleep=fake_sleep, backoff=backoff)
    assert (info.status, info.terminal) == ("in_progress", False)
    assert sleeps == [10, 20, 25, 5]


async def test_status_without_wait_polls_once_and_errors_are_one_line(
    store, keyed, pages, mock, fake_sleep
):
    fake = FakeBatches("openai", mock)
    await submit(store, keyed, "openai")
    fake.polls = ["in_progress"]
    [info] = await poll(store, keyed)
    assert info.status == "in_progress"
    fake.fail_polls = 6  # every retry of the request fails too
    with pytest.raises(batch.BatchAPIError, match="reading the batch failed: HTTP 503"):
        await poll(store, keyed, sleep=fake_sleep)
    assert fake.get_route.call_count == 1 + 6


# --- collect ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_collect_stores_answers_logs_batch_cost_and_writes_capabilities(
    provider, store, keyed, pages, mock
):
    fake = FakeBatches(provider, mock)
    sub = await submit(store, keyed, provider)
    fake.finish(DONE[provider], fake.answers())
    [report] = await collect(store, keyed, str(sub.run_id))
    assert (report.succeeded, report.requeued, report.pending) == (N, 0, False)
    assert report.report is not None and report.report.capabilities == N
    assert run_row(store).status == "succeeded"
    assert capability_names(store) == {f"Thing {i}" for i in range(N)}
    assert {j.state for j in job_rows(store)} == {"done"}
    calls = call_rows(store)
    assert [c.outcome for c in calls] == ["ok"] * N
    price_in, price_out = PRICES[provider]
    full = (300 * price_in + 100 * price_out) / 1e6
    for c in calls:
        assert (c.input_tokens, c.output_tokens, c.provider) == (300, 100, provider)
        assert c.cost_usd == pytest.approx(full * batch.BATCH_DISCOUNT)
    assert report.cost_usd == pytest.approx(N * full / 2)
    again = await collect(store, keyed, str(sub.run_id))
    assert again == [] and len(call_rows(store)) == N  # collected once


async def test_partial_failure_requeues_errors_and_invalid_answers(store, keyed, pages, mock):
    fake = FakeBatches("openai", mock)
    await submit(store, keyed, "openai")
    outputs = fake.answers(lambda i: i in (0, 1, 2))
    outputs.append(ok_line(fake.cid(3), ungrounded(3)))
    outputs.append(ok_line(fake.cid(4), grounded(4), finish_reason="length"))
    fake.finish("completed", outputs, [http_error_line(fake.cid(5))])
    [report] = await collect(store, keyed)
    assert (report.succeeded, report.requeued) == (3, 3)
    assert report.reasons == {"invalid": 2, "error": 1}
    assert report.report is None and run_row(store).status == "running"
    rows = {page_of_job(store, j): j for j in job_rows(store)}
    assert [rows[i].state for i in range(N)] == ["done"] * 3 + ["queued"] * 3
    assert "evidence quotes not found verbatim" in rows[3].last_error
    assert "cut off at max_tokens" in rows[4].last_error
    assert rows[5].last_error == "batch item HTTP 500: server_error: server error"
    assert all(rows[i].worker is None and rows[i].lease_until is None for i in (3, 4, 5))
    outcomes = sorted(c.outcome for c in call_rows(store))
    assert outcomes == ["error", "invalid", "invalid", "ok", "ok", "ok"]
    # a normal extract resumes the run and sends only the three re-queued jobs
    with respx.mock() as router:
        route = router.post(OPENAI_URL).mock(side_effect=inline_answer)
        final = await extract_inline(store, keyed, "openai")
    assert route.call_count == 3
    sent = {page_of(json.loads(c.request.content)["messages"][1]["content"]) for c in route.calls}
    assert sent == {3, 4, 5}
    assert final.capabilities == N and run_row(store).status == "succeeded"
    assert capability_names(store) == {f"Thing {i}" for i in range(N)}


def page_of_job(store: Store, job: Job) -> int:
    with store.transaction() as session:
        inputs = load_inputs(session, job.run_id)
    return page_of(inputs.groups[job.id][0][0].text)


async def test_openai_expiry_collects_partial_output_and_requeues_the_rest(
    store, keyed, pages, mock
):
    fake = FakeBatches("openai", mock)
    await submit(store, keyed, "openai")
    expired = [expired_line(fake.cid(i)) for i in (2, 3, 4, 5)]
    fake.finish("expired", fake.answers(lambda i: i < 2), expired)
    [report] = await collect(store, keyed, "batch-1")
    assert (report.status, report.succeeded, report.requeued) == ("expired", 2, 4)
    queued = [j for j in job_rows(store) if j.state == "queued"]
    assert len(queued) == 4
    assert all(j.last_error.startswith("batch item error: batch_expired") for j in queued)


async def test_mistral_timeout_requeues_requests_without_a_result(store, keyed, pages, mock):
    fake = FakeBatches("mistral", mock)
    await submit(store, keyed, "mistral")
    fake.finish("TIMEOUT_EXCEEDED", fake.answers(lambda i: i % 2 == 0))
    [report] = await collect(store, keyed)
    assert (report.succeeded, report.requeued, report.reasons) == (3, 3, {"no result": 3})
    queued = [j for j in job_rows(store) if j.state == "queued"]
    assert {j.last_error for j in queued} == {"batch batch-1 expired before this request ran"}
    assert len(call_rows(store)) == 3  # nothing was run for the expired ones


@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_cancelled_batch_requeues_what_did_not_run(provider, store, keyed, pages, mock):
    fake = FakeBatches(provider, mock)
    await submit(store, keyed, provider)
    status = "CANCELLED" if provider == "mistral" else "cancelled"
    fake.finish(status, fake.answers(lambda i: i == 0))
    [report] = await collect(store, keyed)
    assert (report.succeeded, report.requeued) == (1, N - 1)
    queued = [j for j in job_rows(store) if j.state == "queued"]
    assert {j.last_error for j in queued} == {"batch batch-1 was cancelled before this request ran"}
    with respx.mock() as router:
        url = MISTRAL_URL if provider == "mistral" else OPENAI_URL
        route = router.post(url).mock(side_effect=inline_answer)
        await extract_inline(store, keyed, provider)
    assert route.call_count == N - 1 and run_row(store).status == "succeeded"


async def test_failed_batch_requeues_everything_with_the_reason(store, keyed, pages, mock):
    fake = FakeBatches("openai", mock)
    await submit(store, keyed, "openai")
    fake.finish("failed", [])
    fake.batches["batch-1"]["errors"] = {
        "object": "list",
        "data": [{"code": "invalid_request", "message": "line 1: bad schema"}],
    }
    [report] = await collect(store, keyed)
    assert report.requeued == N
    assert {j.last_error for j in job_rows(store)} == {"batch batch-1 failed: line 1: bad schema"}


async def test_collect_leaves_a_running_batch_alone(store, keyed, pages, mock):
    fake = FakeBatches("mistral", mock)
    await submit(store, keyed, "mistral")
    fake.polls = ["RUNNING"]
    [report] = await collect(store, keyed)
    assert (report.pending, report.status) == (True, "RUNNING")
    assert {j.state for j in job_rows(store)} == {"running"}
    assert fake.download_route.call_count == 0


async def test_extract_while_a_batch_holds_the_jobs_sends_nothing(store, keyed, pages, mock):
    FakeBatches("mistral", mock)
    await submit(store, keyed, "mistral")
    chat = mock.post(MISTRAL_URL).mock(side_effect=inline_answer)
    from decomposer.extraction.run import RunNotFinished

    with pytest.raises(RunNotFinished, match="6 running"):
        await extract_inline(store, keyed, "mistral")
    assert chat.call_count == 0
    again = await submit(store, keyed, "mistral")
    assert (again.batch_ids, again.held) == ([], N)


# --- CLI ----------------------------------------------------------------------------------


def run_batch_cli(settings: Settings, *args: str) -> Any:
    """``decomposer batch …`` on a fresh app, independent of how cli.py wires it."""
    from decomposer.cli import batch as cli_batch

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """root"""

    cli_batch.register(app)
    command = typer.main.get_command(app)
    return command.main(args=list(args), standalone_mode=False, obj=Env(settings))


def test_cli_batch_commands(store, keyed, pages, mock, capsys):
    fake = FakeBatches("openai", mock)
    sub = asyncio.run(submit(store, keyed, "openai"))
    capsys.readouterr()
    run_batch_cli(keyed, "batch", "list", "--json")
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["batch_id"], listed["run_id"], listed["status"]) == (
        "batch-1",
        sub.run_id,
        "validating",
    )
    fake.polls = ["in_progress"]
    run_batch_cli(keyed, "batch", "status", str(sub.run_id), "--json")
    assert json.loads(capsys.readouterr().out)[0]["status"] == "in_progress"
    fake.finish("completed", fake.answers())
    run_batch_cli(keyed, "batch", "collect", "batch-1")
    out = capsys.readouterr().out
    assert "6 answers stored, 0 queued again" in out and "succeeded" in out
    run_batch_cli(keyed, "batch", "list")
    assert "batch-1" in capsys.readouterr().out


def test_extract_batch_through_main(keyed, pages, mock, capsys, store):
    """``decomposer extract acme --batch`` then ``decomposer batch collect`` via ``main``."""
    from decomposer.cli import app as cli

    extract = typer.main.get_command(cli.app).commands["extract"]  # type: ignore[attr-defined]
    if not any(p.name == "batch" for p in extract.params):
        pytest.skip("extract --batch is not wired into cli.py yet")
    fake = FakeBatches("mistral", mock)
    assert cli.main(["extract", "acme", "--batch", "--pack-tokens", "1"]) == 0
    assert "sent 6 requests in 1 mistral batch(es): batch-1" in capsys.readouterr().out
    fake.finish("SUCCESS", fake.answers())
    assert cli.main(["batch", "collect"]) == 0
    assert "6 answers stored" in capsys.readouterr().out
    assert run_row(store).status == "succeeded"
    assert cli.main(["batch", "status", "nope"]) == 1
    assert capsys.readouterr().err == "error: no batch for 'nope' — see `decomposer batch list`\n"


# --- every Batch API request: limiter, retries, log; cancel; files deleted -----------------


@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_collect_deletes_the_batch_files(provider, store, keyed, pages, mock):
    fake = FakeBatches(provider, mock)
    await submit(store, keyed, provider)
    fake.finish(DONE[provider], fake.answers(lambda i: i > 0), [http_error_line(fake.cid(0))])
    await collect(store, keyed)
    assert sorted(fake.deleted) == ["err-batch-1", "file-in-1", "out-batch-1"]


@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_cancel_stops_the_batch_then_collect_keeps_what_ran(
    provider, store, keyed, pages, mock
):
    fake = FakeBatches(provider, mock)
    sub = await submit(store, keyed, provider)
    async with httpx.AsyncClient() as http:
        [info] = await batch.cancel(store, keyed, str(sub.run_id), http=http)
    assert fake.cancel_route.call_count == 1 and fake.deleted == ["file-in-1"]
    assert info.status == ("CANCELLATION_REQUESTED" if provider == "mistral" else "cancelling")
    assert {j.state for j in job_rows(store)} == {"running"}  # held until collected
    fake.finish(
        "CANCELLED" if provider == "mistral" else "cancelled", fake.answers(lambda i: i < 2)
    )
    [report] = await collect(store, keyed)
    assert (report.succeeded, report.requeued) == (2, N - 2)
    assert sorted(fake.deleted) == ["file-in-1", "file-in-1", "out-batch-1"]
    async with httpx.AsyncClient() as http:
        with pytest.raises(NotFoundError, match="no running batch for 'batch-1'"):
            await batch.cancel(store, keyed, "batch-1", http=http)


@dataclass
class SimClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


async def test_batch_requests_pass_the_limiter_and_wait_out_retry_after(mock, caplog):
    """A 429 on a status request: the key's limiter is told (its pace drops), the retry waits
    the Retry-After, and both attempts are logged without the key."""
    from decomposer.extraction.batch_calls import GuardedBatchClient
    from decomposer.providers.ratelimit import Limits, RateLimiter

    fake = FakeBatches("openai", mock)
    fake.batches["b1"] = {
        "id": "b1",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "created_at": 1765000000,
        "input_file_id": "file-in-1",
        "status": "in_progress",
    }
    fake.get_route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"message": "slow"}}),
        httpx.Response(200, json=fake.batches["b1"]),
    ]
    clock = SimClock()
    limiter = RateLimiter(Limits(rps=2), "test-batch", sleep=clock.sleep, clock=clock)
    caplog.set_level("INFO", logger="decomposer.batch")
    async with httpx.AsyncClient() as http:
        inner = batch.batch_spec("openai").client(SECRET, http, None)
        client = GuardedBatchClient(inner, "openai", limiter, sleep=clock.sleep, monotonic=clock)
        remote = await client.retrieve("b1")
    assert remote.status == "in_progress" and fake.get_route.call_count == 2
    assert limiter.throttled == 1 and clock.sleeps == [7.0]
    lines = [r.getMessage() for r in caplog.records if r.name == "decomposer.batch"]
    assert [line.split(" latency_ms")[0] for line in lines] == [
        "batch call provider=openai call=retrieve outcome=error status=429",
        "batch call provider=openai call=retrieve outcome=ok status=-",
    ]
    assert SECRET not in caplog.text


def test_cli_batch_cancel(store, keyed, pages, mock, capsys):
    fake = FakeBatches("openai", mock)
    asyncio.run(submit(store, keyed, "openai"))
    capsys.readouterr()
    run_batch_cli(keyed, "batch", "cancel", "batch-1")
    assert "cancelling" in capsys.readouterr().out and fake.deleted == ["file-in-1"]
