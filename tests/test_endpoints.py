"""Provider failures name the endpoint (host and path, never a key); a remote OpenAI-compatible
host without a price costs "unknown", never $0."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from conftest import DOC, GOOD, SECRET, ok
from decomposer.calls.caller import RetryPolicy
from decomposer.calls.prompts import load_prompt
from decomposer.core.errors import ProviderError
from decomposer.extraction.task import ExtractionCaller
from decomposer.providers.base import ProviderConfig
from decomposer.providers.pricing import is_local, load_prices

REMOTE = "https://gpu.example.com:8443/v1"
CONTEXT = {
    "tool": "AcmeDB",
    "chunks": [{"id": "c1", "source": "acme.md", "heading": "AcmeDB", "text": DOC}],
}


@pytest.fixture
def acme(cli, tmp_path) -> Path:
    folder = tmp_path / "acme-docs"
    folder.mkdir()
    (folder / "acme.md").write_text(DOC)
    assert cli("tool", "add", "AcmeDB", "--type", "API")[0] == 0
    assert cli("ingest", "acmedb", str(folder))[0] == 0
    return folder


async def test_connection_failure_names_the_url_and_not_the_key(store, fake_sleep):
    caller = ExtractionCaller(
        cfg=ProviderConfig("openai-compatible", "m", "json_schema", REMOTE),
        key=SECRET,
        prompt=load_prompt(),
        store=store,
        http=httpx.AsyncClient(),
        prices=load_prices(),
        policy=RetryPolicy(attempts=2),
        sleep=fake_sleep,
    )
    with respx.mock() as mock:
        mock.post(f"{REMOTE}/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(ProviderError) as info:
            await caller.extract(CONTEXT, run_id=None, chunk_id="c1")
    message = str(info.value)
    assert message.startswith(
        "openai-compatible request to gpu.example.com:8443/v1/chat/completions failed after "
        "2 attempt(s): connection"
    )
    assert SECRET not in message


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://192.168.1.20:8080/v1", True),
        ("http://[::1]:8000/v1", True),
        ("https://gpu.example.com/v1", False),
        ("https://api.together.xyz/v1", False),
        (None, False),
    ],
)
def test_local_hosts(url, local):
    assert is_local(url) is local


def test_remote_compatible_host_without_a_price_is_unknown():
    prices = load_prices()
    assert prices.cost("openai-compatible", "m", 1000, 1000, "http://127.0.0.1:8000/v1") == 0.0
    assert prices.cost("openai-compatible", "m", 1000, 1000, REMOTE) is None


def test_a_priced_remote_model_is_costed(tmp_path):
    file = tmp_path / "prices.json"
    file.write_text(json.dumps({"openai-compatible": {"m": [1.0, 2.0]}}))
    assert load_prices(file).cost("openai-compatible", "m", 1_000_000, 0, REMOTE) == 1.0


def test_unknown_cost_in_summary_runs_table_and_json(cli, acme):
    with respx.mock() as mock:
        mock.post(f"{REMOTE}/chat/completions").mock(return_value=ok(GOOD, model="m"))
        code, out, err = cli(
            "extract", "acmedb", "--provider", "openai-compatible", "--base-url", REMOTE,
            "--model", "m",
        )  # fmt: skip
    assert code == 0, err
    assert "unknown" in out and "$0.0000" not in out
    [run] = cli.json("runs")
    assert run["cost_usd"] is None
    code, out, _ = cli("runs")
    assert code == 0 and "unknown" in out and "$0" not in out


@pytest.mark.parametrize(("url", "cost"), [("http://127.0.0.1:8000/v1", 0.0), (REMOTE, None)])
def test_embedding_calls_on_a_compatible_server_are_priced_by_host(store, url, cost):
    from sqlalchemy import select

    from decomposer.calls.calllog import CallLog
    from decomposer.calls.embedding import EmbeddingCaller
    from decomposer.providers.spec import EmbedReply
    from decomposer.store.models import LLMCall

    caller = EmbeddingCaller(
        provider="openai-compatible",
        model="m",
        embed=lambda model, texts: EmbedReply([[1.0] for _ in texts], input_tokens=10),
        prices=load_prices(),
        log=CallLog(store),
        base_url=url,
    )
    caller(["a"])
    with store.transaction() as session:
        [row] = session.scalars(select(LLMCall)).all()
        assert row.cost_usd == cost
