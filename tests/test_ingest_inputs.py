"""Inputs that crashed or hung ingest and import-queries (issue 10): each is one line, exit 1,
and nothing written; the ones that can be handled (deep HTML, a FIFO in a folder, a new chunk
budget) are handled. Slow and huge URLs come from loopback servers or mock transports, and
deadlines are checked with an injected clock or a tiny deadline, never by timing the test."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, create_engine, select, update

from conftest import CLI, DOC
from decomposer.core.clock import utcnow
from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError, InputError
from decomposer.ingest import convert
from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS
from decomposer.ingest.documents import ingest
from decomposer.ingest.sources import load_sources
from decomposer.store import Store
from decomposer.store.models import Chunk, Document
from support.servers import serve

MB = 1024 * 1024
NESTED = "<html><body><h1>Deep</h1>" + "<div>" * 1000 + "deep text" + "</div>" * 1000 + "</body>"


def snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a refused input changed nothing."""
    engine = create_engine(settings.database_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        rows = {
            t.name: sorted(map(tuple, conn.execute(t.select())), key=repr)
            for t in meta.sorted_tables
        }
    engine.dispose()
    return rows


@pytest.fixture
def acme(cli: CLI, tmp_path: Path) -> Path:
    folder = tmp_path / "acme-docs"
    folder.mkdir()
    (folder / "acme.md").write_text(DOC)
    assert cli("tool", "add", "AcmeDB", "--type", "API")[0] == 0
    code, _, err = cli("ingest", "acmedb", str(folder))
    assert code == 0, err
    return folder


# --- loopback server: slow and huge bodies ------------------------------------------------------


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/slow`` sends a line every 50 ms (for 10 s at most); ``/big`` sends 25 MB in 1 MB
    pieces without a Content-Length; ``/declared`` says it is 200 MB; anything else is OK."""
    if scope["type"] != "http":
        return
    path = scope["path"].removesuffix(".md")
    length = [(b"content-length", str(200 * MB).encode())] if path == "/declared" else []
    headers = [(b"content-type", b"text/markdown"), *length]
    await receive()  # the (empty) request body
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/slow":
        for number in range(200):
            await send(
                {"type": "http.response.body", "body": b"line %d\n" % number, "more_body": True}
            )
            if await _disconnected(receive, 0.05):
                return
    elif path == "/big":
        for _ in range(25):
            await send({"type": "http.response.body", "body": b"x" * MB, "more_body": True})
    elif path == "/declared":
        await send({"type": "http.response.body", "body": b"# tiny\n" * 10, "more_body": True})
        await asyncio.sleep(0.5)
    await send({"type": "http.response.body", "body": b"# ok\n"})


async def _disconnected(receive: Any, seconds: float) -> bool:
    """Wait ``seconds`` for the client to hang up, so the server can stop at once when it does."""
    try:
        message = await asyncio.wait_for(receive(), seconds)
    except TimeoutError:
        return False
    return bool(message["type"] == "http.disconnect")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(_app) as base:
        yield base


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    args: list[str]
    message: str  # a regex matched against the whole error line (after "error: ")
    setup: Callable[[Path], None] = lambda tmp: None


def _fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def _sparse(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        handle.truncate(size)


def _write(path: Path, text: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / path).write_text(text)


CASES: dict[str, Case] = {
    "chunk tokens 0": Case(
        ["ingest", "acmedb", "{tmp}/acme-docs", "--chunk-tokens", "0"],
        r"--chunk-tokens must be between 50 and 1000000 tokens, got 0",
    ),
    "chunk tokens 1": Case(
        ["ingest", "acmedb", "{tmp}/acme-docs", "--chunk-tokens", "1"],
        r"--chunk-tokens must be between 50 and 1000000 tokens, got 1",
    ),
    "chunk tokens -1": Case(
        ["ingest", "acmedb", "{tmp}/acme-docs", "--chunk-tokens", "-1"],
        r"--chunk-tokens must be between 50 and 1000000 tokens, got -1",
    ),
    "chunk tokens beyond any context": Case(
        ["ingest", "acmedb", "{tmp}/acme-docs", "--chunk-tokens", str(10**12)],
        r"--chunk-tokens must be between 50 and 1000000 tokens, got 1000000000000",
    ),
    "FIFO named directly": Case(
        ["ingest", "acmedb", "{tmp}/pipes/x.md"],
        r"\S+/pipes/x\.md: not a regular file or folder",
        lambda tmp: _fifo(tmp / "pipes" / "x.md"),
    ),
    "folder holding only a FIFO": Case(
        ["ingest", "acmedb", "{tmp}/pipes"],
        r"\S+/pipes: no supported files \(.*\) in this folder",
        lambda tmp: _fifo(tmp / "pipes" / "x.md"),
    ),
    "file over the size cap": Case(
        ["ingest", "acmedb", "{tmp}/big.md"],
        r"\S+/big\.md: file is larger than the 20 MB cap",
        lambda tmp: _sparse(tmp / "big.md", 21 * MB),
    ),
    "URL body over the size cap": Case(
        ["ingest", "acmedb", "{url}/big.md"],
        r"http://127\.0\.0\.1:\d+/big\.md: response is larger than the 20 MB cap",
    ),
    "URL declaring 200 MB": Case(
        ["ingest", "acmedb", "{url}/declared.md"],
        r"http://127\.0\.0\.1:\d+/declared\.md: response is larger than the 20 MB cap",
    ),
    "query count 10^26": Case(
        ["match", "import-queries", "{tmp}/q.csv"],
        r"\S+/q\.csv:3: count 100000000000000000000000000 is above the maximum 1000000000",
        _write(Path("q.csv"), "query,count\nstreaming,3\nbatch api," + "1" + "0" * 26 + "\n"),
    ),
    "query counts adding up past the maximum": Case(
        ["match", "import-queries", "{tmp}/q.csv"],
        r"\S+/q\.csv:3: counts for this query add up to more than 1000000000",
        _write(Path("q.csv"), "query,count\nstreaming,999999999\nstreaming,2\n"),
    ),
    "query count in superscript digits": Case(
        ["match", "import-queries", "{tmp}/q.csv"],
        r"\S+/q\.csv:2: count must be a whole number ≥ 1, got '²'",
        _write(Path("q.csv"), "query,count\nstreaming,²\n"),
    ),
    "CSV with an unknown header": Case(
        ["match", "import-queries", "{tmp}/q.csv"],
        r"\S+/q\.csv:1: CSV header q,c,d,e has no 'query' column — .*",
        _write(Path("q.csv"), "q,c,d,e\nstreaming,3,2026-01-01,x\nbatch,1,2026-01-02,y\n"),
    ),
    "CSV header naming count but not query": Case(
        ["match", "import-queries", "{tmp}/q.csv"],
        r"\S+/q\.csv:2: CSV header text,count has no 'query' column — .*",
        _write(Path("q.csv"), "\ntext,count\nstreaming\n"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_1_and_nothing_written(
    cli: CLI, acme: Path, settings: Settings, tmp_path: Path, server: str, case: str
) -> None:
    spec = CASES[case]
    spec.setup(tmp_path)
    (acme / "acme.md").write_text(DOC + "\nChanged, so a good input would write.\n")
    args = [a.replace("{tmp}", str(tmp_path)).replace("{url}", server) for a in spec.args]
    before = snapshot(settings)
    code, out, err = cli(*args)
    assert code == 1, (out, err)
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert re.fullmatch(spec.message, err[len("error: ") : -1]), err
    assert "Traceback" not in out + err
    assert snapshot(settings) == before


# --- handled rather than refused ----------------------------------------------------------------


def test_deeply_nested_html_is_flattened_and_ingested(cli: CLI, acme: Path, settings: Settings):
    (acme / "deep.html").write_text(NESTED)
    code, out, err = cli("ingest", "acmedb", str(acme))
    assert code == 0, err
    assert "added:" in out and "deep.html" in out
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        text = conn.scalar(select(Document.text).where(Document.source.like("%deep.html")))
    engine.dispose()
    assert text == "# Deep\n\ndeep text\n"


def test_html_too_deep_even_for_the_flattener_is_one_line(
    cli: CLI, acme: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """The RecursionError fallback: if markdownify still overflows, the file is named."""
    monkeypatch.setattr(convert, "MAX_HTML_DEPTH", 10**6)
    (acme / "deep.html").write_text(NESTED)
    before = snapshot(settings)
    code, _, err = cli("ingest", "acmedb", str(acme))
    assert code == 1
    assert re.fullmatch(r"error: \S+/deep\.html: HTML is nested too deeply to convert\n", err)
    assert snapshot(settings) == before


def test_fifo_in_a_folder_is_skipped_with_a_note(cli: CLI, acme: Path):
    os.mkfifo(acme / "x.md")
    code, out, err = cli("ingest", "acmedb", str(acme))
    assert code == 0, err
    assert re.search(r"note: skipped x\.md in \S+: not a regular file \(FIFO", out), out
    assert "unchanged (no-op): " in out


# --- slow URLs: an overall deadline -------------------------------------------------------------


def _ticking_clock(step: float = 1.0) -> Callable[[], float]:
    ticks = itertools.count()
    return lambda: next(ticks) * step


def _endless_lines() -> Iterator[bytes]:
    for number in itertools.count():
        yield b"line %d\n" % number


def test_endless_trickle_stops_at_the_deadline_with_an_injected_clock(
    store: Store, cli: CLI, settings: Settings
):
    """A body that never ends, one line per clock tick (a second): the deadline ends it."""
    assert cli("tool", "add", "AcmeDB")[0] == 0
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=_endless_lines(), headers={"content-type": "text/plain"}
        )
    )
    before = snapshot(settings)
    with httpx.Client(transport=transport) as client, pytest.raises(InputError) as caught:
        ingest(
            store,
            "acmedb",
            ["https://docs.example.com/slow.md"],
            now=utcnow(),
            http_client=client,
            fetch_deadline=60,
            clock=_ticking_clock(),
        )
    assert str(caught.value).startswith(
        "https://docs.example.com/slow.md: not fully received within the 60 s fetch deadline"
    )
    assert snapshot(settings) == before


def test_slow_loopback_server_hits_a_tiny_deadline(server: str):
    with pytest.raises(InputError, match=r"/slow\.md: not fully received within the 0\.2 s"):
        load_sources([f"{server}/slow.md"], fetch_deadline=0.2)


def test_size_cap_is_configurable(server: str, tmp_path: Path):
    with pytest.raises(InputError, match=r"/big\.md: response is larger than the 1 MB cap"):
        load_sources([f"{server}/big.md"], max_bytes=MB)
    (tmp_path / "page.md").write_text("# Page\n\n" + "word " * 300)
    with pytest.raises(InputError, match=r"page\.md: file is larger than the 1 KB cap"):
        load_sources([str(tmp_path / "page.md")], max_bytes=1024)
    documents, _ = load_sources([str(tmp_path / "page.md")], max_bytes=2048)
    assert documents[0].title == "Page"


def test_gzip_body_is_capped_after_decoding():
    import gzip

    body = gzip.compress(b"# bomb\n" + b"a" * (4 * MB))
    assert len(body) < MB
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=body, headers={"content-encoding": "gzip", "content-type": "text/plain"}
        )
    )
    with httpx.Client(transport=transport) as client, pytest.raises(InputError, match="1 MB cap"):
        load_sources(["https://docs.example.com/bomb.md"], http_client=client, max_bytes=MB)


def test_a_body_within_the_cap_and_deadline_loads(server: str):
    documents, _ = load_sources([f"{server}/ok.md"], max_bytes=MB, fetch_deadline=30)
    assert documents[0].text == "# ok\n"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DECOMPOSER_FETCH_DEADLINE": "0"}, "DECOMPOSER_FETCH_DEADLINE must be a positive number"),
        ({"DECOMPOSER_FETCH_DEADLINE": "soon"}, "DECOMPOSER_FETCH_DEADLINE must be a positive"),
        ({"DECOMPOSER_MAX_DOCUMENT_MB": "-5"}, "DECOMPOSER_MAX_DOCUMENT_MB must be a positive"),
        ({"DECOMPOSER_MAX_DOCUMENT_MB": "inf"}, "DECOMPOSER_MAX_DOCUMENT_MB must be a positive"),
    ],
)
def test_fetch_limit_settings_are_checked(env: dict[str, str], message: str, tmp_path: Path):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"DECOMPOSER_HOME": str(tmp_path), **env})


def test_fetch_limit_settings_defaults_and_overrides(tmp_path: Path):
    default = Settings.from_env({"DECOMPOSER_HOME": str(tmp_path)})
    assert (default.fetch_deadline, default.max_document_bytes) == (60.0, 20 * MB)
    custom = Settings.from_env(
        {
            "DECOMPOSER_HOME": str(tmp_path),
            "DECOMPOSER_FETCH_DEADLINE": "5",
            "DECOMPOSER_MAX_DOCUMENT_MB": "0.5",
        }
    )
    assert (custom.fetch_deadline, custom.max_document_bytes) == (5.0, MB // 2)


# --- a new chunk budget re-chunks ---------------------------------------------------------------


def _chunks(settings: Settings) -> tuple[int | None, list[tuple[int, int]], str]:
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        budget, text, doc_id = conn.execute(
            select(Document.chunk_budget, Document.text, Document.id)
        ).one()
        spans = conn.execute(
            select(Chunk.start, Chunk.end)
            .where(Chunk.document_id == doc_id)
            .order_by(Chunk.ordinal)
        ).all()
    engine.dispose()
    return budget, [(s, e) for s, e in spans], text


def test_new_chunk_budget_rechunks_and_the_same_budget_is_a_noop(
    cli: CLI, acme: Path, settings: Settings
):
    (acme / "acme.md").write_text(DOC + "\n## More\n\n" + "More words about AcmeDB. " * 60 + "\n")
    assert cli("ingest", "acmedb", str(acme))[0] == 0
    budget, spans, text = _chunks(settings)
    assert budget == DEFAULT_CHUNK_TOKENS and len(spans) == 1

    code, out, err = cli("ingest", "acmedb", str(acme), "--chunk-tokens", "60")
    assert code == 0, err
    assert "updated:" in out and "note: re-chunked" in out and "6000 → 60 tokens" in out
    budget, spans, _ = _chunks(settings)
    assert budget == 60 and len(spans) > 2
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(spans))

    code, out, _ = cli("ingest", "acmedb", str(acme), "--chunk-tokens", "60")
    assert code == 0 and "unchanged (no-op)" in out and "0 chunks written" in out

    code, out, _ = cli("ingest", "acmedb", str(acme))
    assert code == 0 and "60 → 6000 tokens" in out
    assert _chunks(settings)[:2] == (DEFAULT_CHUNK_TOKENS, [(0, len(text))])


def test_unknown_budget_counts_as_the_default(cli: CLI, acme: Path, settings: Settings):
    """Rows from before migration 0008 have NULL: re-ingesting them as before stays a no-op."""
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(update(Document).values(chunk_budget=None))
    engine.dispose()
    code, out, _ = cli("ingest", "acmedb", str(acme))
    assert code == 0 and "unchanged (no-op)" in out and "0 chunks written" in out
    assert _chunks(settings)[0] is None
    code, out, _ = cli("ingest", "acmedb", str(acme), "--chunk-tokens", "50")
    assert code == 0 and "note: re-chunked" in out
    assert _chunks(settings)[0] == 50


def test_budget_change_that_cuts_the_same_chunks_writes_none(
    cli: CLI, acme: Path, settings: Settings
):
    """A page smaller than both budgets keeps its one chunk; only the recorded budget moves."""
    code, out, _ = cli("ingest", "acmedb", str(acme), "--chunk-tokens", "5000")
    assert code == 0 and "unchanged (no-op)" in out and "0 chunks written" in out
    assert _chunks(settings)[0] == 5000


def test_the_cli_applies_the_configured_size_cap(
    cli: CLI, acme: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    big = tmp_path / "big.md"
    big.write_text("# Big\n\n" + "word " * 300_000)  # about 1.5 MB: under the default cap
    monkeypatch.setenv("DECOMPOSER_MAX_DOCUMENT_MB", "1")
    code, _, err = cli("ingest", "acmedb", str(big))
    assert code == 1
    assert err.strip().splitlines() == [f"error: {big}: file is larger than the 1 MB cap"]
