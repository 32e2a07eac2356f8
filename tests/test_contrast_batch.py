"""`contrast --batch`: first answers bought through the Batch API (respx on both providers'
files and batch endpoints), checked on collection; accepted ones become lines from the cache,
refused ones are asked again inline with re-asks, and nothing is sent twice."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from conftest import MISTRAL_URL, OPENAI_URL, completion
from decomposer.store.contrast_models import ContrastBatch, ContrastLine
from decomposer.store.models import LLMCall
from test_batch import DONE, MODELS, FakeBatches, keyed, mock, ok_line  # noqa: F401
from test_contrast import GOOD_LINE, HOSTILE, seed

URLS = {"mistral": MISTRAL_URL, "openai": OPENAI_URL}
ORBIT_LINE = (
    "Orbit Model is fine-tuned on your own GPUs with LoRA adapters, while Nimbus API "
    "fine-tunes hosted models from files of up to 10,000 training examples."
)


@pytest.mark.parametrize("provider", ["mistral", "openai"])
def test_batch_round_trip(provider, store, keyed, mock, cli):  # noqa: F811
    seed(store)
    fake = FakeBatches(provider, mock)
    chat = mock.post(URLS[provider]).mock(
        return_value=httpx.Response(
            200,
            json=completion(
                {"vs_alternatives": ORBIT_LINE, "citations": ["Q1", "Q3"]}, model=MODELS[provider]
            ),
        )
    )
    args = ["contrast", "--all", "--batch", "--provider", provider, "--json"]
    first = cli.json(*args[:-1])
    assert first["batch"]["sent"] == 2 and chat.call_count == 0
    assert first["proposed"] == 0
    sent = {line["custom_id"]: line for line in fake.lines}
    assert set(sent) == {"ctr-cap_nimbus-api_0", "ctr-cap_orbit-model_0"}
    body = sent["ctr-cap_nimbus-api_0"]["body"]
    assert '<quote id="Q1">' in body["messages"][1]["content"]

    # while the batch runs, nothing is sent again and no line is written
    again = cli.json(*args[:-1])
    assert (again["batch"]["sent"], again["batch"]["pending"], again["batch"]["held"]) == (0, 1, 2)
    assert len(fake.uploads) == 1

    fake.finish(
        DONE[provider],
        [
            ok_line(
                "ctr-cap_nimbus-api_0", {"vs_alternatives": GOOD_LINE, "citations": ["Q1", "Q3"]}
            ),
            ok_line(
                "ctr-cap_orbit-model_0",
                {"vs_alternatives": HOSTILE["marketing"][0], "citations": ["Q1", "Q3"]},
            ),
        ],
    )
    done = cli.json(*args[:-1])
    assert (done["batch"]["answered"], done["batch"]["refused"]) == (1, 1)
    assert done["batch"]["rejections"] == {"marketing": 1}
    assert done["proposed"] == 2 and chat.call_count == 1  # only the refused one, inline
    assert done["cache_hits"] == 1 and done["batch"]["sent"] == 0
    with store.transaction() as s:
        lines = {r.capability_id: r for r in s.scalars(select(ContrastLine))}
        calls = list(s.scalars(select(LLMCall).where(LLMCall.task == "contrast")))
        record = s.scalars(select(ContrastBatch)).one()
    assert lines["cap_nimbus-api_0"].text == GOOD_LINE
    assert lines["cap_orbit-model_0"].text == ORBIT_LINE
    refused = next(c for c in calls if c.outcome == "invalid")
    assert refused.rejections == ["marketing"] and refused.cost_usd is not None
    accepted = next(c for c in calls if c.outcome == "ok" and c.attempts == 1 and not c.cache_hit)
    assert accepted is not None
    assert record.collected_at is not None and (record.answered, record.refused) == (1, 1)
    assert set(fake.deleted) >= {"file-in-1"}

    final = cli.json(*args[:-1])
    assert final["batch"]["sent"] == 0 and final["unchanged"] == 2 and chat.call_count == 1
    assert json.dumps(final)


def test_batch_and_replay_are_refused(store, cli):
    code, _, err = cli("contrast", "--all", "--batch", "--replay", "x")
    assert code == 1 and "--batch cannot be combined with --replay" in err
