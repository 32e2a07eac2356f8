"""The offline demo path: fixtures replayed through the real SDK and Instructor, via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import CLI, REPO
from decomposer.providers.replay import ReplayTransport

RECORDINGS = REPO / "fixtures" / "recordings"


def test_demo_flow_extracts_both_tools_offline(capsys):
    cli = CLI(capsys)
    for name, kind in (("Mistral API", "API"), ("Llama 4", "Model")):
        assert cli("tool", "add", name, "--type", kind)[0] == 0
    for slug in ("mistral-api", "llama-4"):
        assert cli("ingest", slug, str(REPO / "fixtures" / "docs" / slug))[0] == 0
        code, out, err = cli("extract", slug, "--replay", str(RECORDINGS))
        assert code == 0, err
        assert "succeeded" in out
    mistral = cli.json("capabilities", "mistral-api")
    llama = cli.json("capabilities", "llama-4")
    assert len(mistral) >= 9 and len(llama) >= 4
    assert all(c["status"] == "proposed" for c in mistral + llama)
    assert all(e["grounded"] for c in mistral + llama for e in c["evidence"])
    merged = [c for c in mistral if len({e["document"] for e in c["evidence"]}) > 1]
    assert merged, "the demo docs repeat a capability across documents"
    runs = cli.json("runs")
    by_tool = {r["tool"]: r for r in runs}
    assert by_tool["mistral-api"]["attempts"] == by_tool["mistral-api"]["calls"] + 1  # one re-ask
    assert all(r["status"] == "succeeded" and r["cost_usd"] > 0 for r in runs)


def test_replay_answers_tools_mode_as_a_tool_call():
    transport = ReplayTransport.from_path(RECORDINGS)
    match = transport.interactions[0].match
    import asyncio

    import httpx

    async def send() -> dict[str, object]:
        async with httpx.AsyncClient(transport=transport) as http:
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": match}],
                "tools": [{"type": "function", "function": {"name": "Extraction"}}],
            }
            response = await http.post("https://api.mistral.ai/v1/chat/completions", json=body)
            return dict(response.json())

    reply = asyncio.run(send())
    message = reply["choices"][0]["message"]  # type: ignore[index]
    assert message["tool_calls"][0]["function"]["name"] == "Extraction"
    assert json.loads(message["tool_calls"][0]["function"]["arguments"])["capabilities"]


def test_python_dash_m_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "decomposer", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "extract" in done.stdout
