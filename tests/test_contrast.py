"""Contrast lines through respx-mocked Mistral and OpenAI: the request, the checker on hostile
answers (each re-asked, then dropped, its causes in the call log), a good answer accepted, and
incremental re-runs (zero calls when unchanged, only affected lines after a quote changes)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select, update

from conftest import MISTRAL_URL, OPENAI_URL, SECRET, ok
from decomposer.calls.caller import ModelCaller, RetryPolicy
from decomposer.calls.prompts import load_prompt
from decomposer.contrast.run import ContrastReport, run_contrast
from decomposer.contrast.task import Contrast, contrast_task
from decomposer.providers.base import ProviderConfig
from decomposer.providers.pricing import load_prices
from decomposer.store import Store
from decomposer.store.contrast_models import ContrastLine
from decomposer.store.models import Evidence, LLMCall, Tool
from pages_support import add_tool

URLS = {"mistral": MISTRAL_URL, "openai": OPENAI_URL}
MODELS = {"mistral": "mistral-small-latest", "openai": "gpt-4o-mini"}
NIMBUS_QUOTES = [
    ("Fine-tuning jobs accept up to 10,000 training examples per file.", True),
    ("Fine-tuned models are billed at $2 per 1M training tokens.", True),
]
ORBIT_QUOTES = [
    ("You can fine-tune Orbit on your own GPUs with LoRA adapters.", True),
    ("Fine-tuning needs at least 2 GPUs with 80 GB of memory each.", True),
]
GOOD_LINE = (
    "Nimbus API fine-tunes hosted models from files of up to 10,000 training examples, while "
    "Orbit Model is fine-tuned on your own GPUs with LoRA adapters."
)
HOSTILE = {
    "invented_number": (
        "Nimbus API fine-tunes from files of up to 50,000 training examples, while Orbit Model "
        "is fine-tuned on your own GPUs with LoRA adapters.",
        ["Q1", "Q3"],
    ),
    "unknown_tool": (
        "Nimbus API fine-tunes hosted models like OpenAI does, while Orbit Model is fine-tuned "
        "on your own GPUs with LoRA adapters.",
        ["Q1", "Q3"],
    ),
    "uncited_tool": (GOOD_LINE, ["Q1"]),
    "unknown_citation": (GOOD_LINE, ["Q1", "Q3", "Q9"]),
    "one_sided": (GOOD_LINE, ["Q3"]),
    "marketing": (
        "Nimbus API offers the best fine-tuning from files of up to 10,000 training examples, "
        "while Orbit Model is fine-tuned on your own GPUs with LoRA adapters.",
        ["Q1", "Q3"],
    ),
    "unsupported_comparative": (
        "Nimbus API fine-tuning is cheaper than the self-hosted fine-tuning of Orbit Model.",
        ["Q2", "Q3"],
    ),
}


def answer(text: str | None, citations: list[str], **kw: Any) -> httpx.Response:
    return ok({"vs_alternatives": text, "citations": citations}, **kw)


def seed(store: Store) -> None:
    add_tool(
        store,
        "nimbus-api",
        [
            {
                "name": "Fine-tuning",
                "category": "fine-tuning",
                "description": "Fine-tune hosted models on your own training data.",
                "unique": "Fine-tuning jobs run on the hosted API.",
                "vs": "Not stated in the docs.",
                "quotes": NIMBUS_QUOTES,
                "status": "proposed",
            },
            {
                "name": "Moderation endpoint",
                "category": "safety",
                "description": "Classifies text into harm categories.",
                "unique": "A separate moderation endpoint.",
                "quotes": [("The moderation endpoint returns nine category scores.", True)],
                "status": "proposed",
            },
        ],
    )
    add_tool(
        store,
        "orbit-model",
        [
            {
                "name": "Self-hosted fine-tuning",
                "category": "fine-tuning",
                "description": "Fine-tune the open weights on your own training data and GPUs.",
                "unique": "Fine-tuning runs on your own hardware.",
                "quotes": ORBIT_QUOTES,
                "status": "proposed",
            },
            {
                "name": "Community licence",
                "category": "platform",
                "description": "Weights are released under a community licence.",
                "unique": "Licence terms for redistribution.",
                "quotes": [("Redistribution requires attribution in the product notice.", True)],
                "status": "proposed",
            },
        ],
    )
    with store.transaction() as s:
        s.execute(
            update(Tool)
            .where(Tool.slug == "nimbus-api")
            .values(vendor="Nimbus Labs", name="Nimbus API")
        )
        s.execute(
            update(Tool)
            .where(Tool.slug == "orbit-model")
            .values(vendor="Orbit AI", name="Orbit Model")
        )


def make_caller(
    store: Store, http: httpx.AsyncClient, fake_sleep: Any, provider: str = "mistral", **kw: Any
) -> ModelCaller[Contrast]:
    return ModelCaller(
        cfg=ProviderConfig(provider, MODELS[provider], kw.pop("mode", "json_schema")),
        key=SECRET,
        task=contrast_task(load_prompt("contrast")),
        store=store,
        http=http,
        prices=load_prices(),
        policy=RetryPolicy(**kw),
        sleep=fake_sleep,
    )


async def contrast(
    store: Store, fake_sleep: Any, route_side_effect: Any, provider: str = "mistral", **kw: Any
) -> tuple[ContrastReport, respx.Route]:
    tools = kw.pop("tools", None)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(URLS[provider]).mock(side_effect=route_side_effect)
        async with httpx.AsyncClient() as http:
            caller = make_caller(store, http, fake_sleep, provider, **kw)
            report = await run_contrast(store, caller, tools)
    return report, route


def lines(store: Store) -> list[ContrastLine]:
    with store.transaction() as s:
        return list(s.scalars(select(ContrastLine).order_by(ContrastLine.id)))


def contrast_calls(store: Store) -> list[LLMCall]:
    with store.transaction() as s:
        return list(s.scalars(select(LLMCall).where(LLMCall.task == "contrast")))


def by_side(request: httpx.Request) -> str:
    return "nimbus" if "(Nimbus API)" in _user(request) else "orbit"


def _user(request: httpx.Request) -> str:
    body = json.loads(request.content)
    return str(body["messages"][1]["content"])


def good(request: httpx.Request) -> httpx.Response:
    if by_side(request) == "nimbus":
        return answer(GOOD_LINE, ["Q1", "Q3"])
    return answer(
        "Orbit Model is fine-tuned on your own GPUs with LoRA adapters, while Nimbus API "
        "fine-tunes hosted models from files of up to 10,000 training examples.",
        ["Q1", "Q3"],
    )


@pytest.mark.parametrize("provider", ["mistral", "openai"])
@pytest.mark.parametrize("mode", ["json_schema", "tools"])
async def test_good_lines_are_proposed_with_provenance(store, fake_sleep, provider, mode):
    seed(store)

    def respond(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        side = by_side(request)
        text = GOOD_LINE if side == "nimbus" else good(request).json()["choices"][0]["message"]
        if side != "nimbus":
            text = json.loads(text["content"])["vs_alternatives"]
        payload = {"vs_alternatives": text, "citations": ["Q1", "Q3"]}
        if "tools" in body:
            return ok(payload, tools=True)
        return ok(payload)

    report, route = await contrast(store, fake_sleep, respond, provider, mode=mode)
    assert (report.with_counterparts, report.proposed, report.dropped) == (2, 2, 0)
    assert report.calls == 2 == route.call_count
    body = json.loads(route.calls[0].request.content)
    system, user = (m["content"] for m in body["messages"])
    assert "untrusted data" in system
    assert '<quote id="Q1">' in user and "Orbit Model" in user
    assert "Moderation" not in user  # only counterparts above the threshold are sent
    if mode == "json_schema":
        assert body["response_format"]["json_schema"]["name"] == "Contrast"
    else:
        assert body["tools"][0]["function"]["name"] == "Contrast"
    rows = lines(store)
    assert [r.status for r in rows] == ["proposed", "proposed"]
    nimbus = next(r for r in rows if r.capability_id == "cap_nimbus-api_0")
    assert nimbus.text == GOOD_LINE
    assert nimbus.counterparts == ["cap_orbit-model_0"]
    with store.transaction() as s:
        ids = {e.quote: e.id for e in s.scalars(select(Evidence))}
    assert nimbus.citations == sorted([ids[NIMBUS_QUOTES[0][0]], ids[ORBIT_QUOTES[0][0]]])
    assert (nimbus.provider, nimbus.model, nimbus.prompt_version) == (
        provider,
        MODELS[provider],
        "contrast/v1",
    )
    assert {c.outcome for c in contrast_calls(store)} == {"ok"}


@pytest.mark.parametrize("cause", sorted(HOSTILE))
async def test_hostile_answer_is_reasked_then_dropped(store, fake_sleep, cause):
    seed(store)
    text, cites = HOSTILE[cause]

    def respond(request: httpx.Request) -> httpx.Response:
        if by_side(request) == "nimbus":
            return answer(text, cites)
        return good(request)

    report, route = await contrast(store, fake_sleep, respond)
    nimbus_requests = [c.request for c in route.calls if by_side(c.request) == "nimbus"]
    assert len(nimbus_requests) == 3  # the first answer, then two re-asks with the reason
    reask = json.loads(nimbus_requests[1].content)["messages"]
    assert len(reask) > 2 and "the line was refused" in json.dumps(reask)
    assert (report.proposed, report.dropped) == (1, 1)
    assert report.rejections.get(cause) == 3
    dropped = next(r for r in lines(store) if r.capability_id == "cap_nimbus-api_0")
    assert dropped.status == "dropped" and cause in dropped.rejections
    row = next(c for c in contrast_calls(store) if c.chunk_id == "cap_nimbus-api_0")
    assert row.outcome == "ungrounded" and row.rejections is not None
    assert row.rejections.count(cause) == 3


async def test_reask_with_reason_then_good_answer_is_accepted(store, fake_sleep):
    seed(store)
    answers = iter([answer(*HOSTILE["marketing"]), answer(GOOD_LINE, ["Q1", "Q3"])])

    def respond(request: httpx.Request) -> httpx.Response:
        return next(answers) if by_side(request) == "nimbus" else good(request)

    report, _ = await contrast(store, fake_sleep, respond)
    assert (report.proposed, report.dropped, report.rejections) == (2, 0, {"marketing": 1})
    nimbus = next(r for r in lines(store) if r.capability_id == "cap_nimbus-api_0")
    assert nimbus.status == "proposed" and nimbus.rejections == ["marketing"]


async def test_declined_line_is_kept_as_dropped(store, fake_sleep):
    seed(store)

    def respond(request: httpx.Request) -> httpx.Response:
        return answer(None, []) if by_side(request) == "nimbus" else good(request)

    report, _ = await contrast(store, fake_sleep, respond)
    assert (report.proposed, report.declined) == (1, 1)


async def test_unchanged_rerun_makes_no_call(store, fake_sleep):
    seed(store)
    await contrast(store, fake_sleep, good)
    before = lines(store)
    report, route = await contrast(store, fake_sleep, good)
    assert route.call_count == 0
    assert (report.unchanged, report.proposed, report.calls) == (2, 0, 0)
    assert [(r.id, r.status) for r in lines(store)] == [(r.id, r.status) for r in before]


async def test_unchanged_rerun_after_a_drop_makes_no_call(store, fake_sleep):
    seed(store)

    def hostile(request: httpx.Request) -> httpx.Response:
        return answer(*HOSTILE["invented_number"])

    await contrast(store, fake_sleep, hostile)
    _, route = await contrast(store, fake_sleep, good)
    assert route.call_count == 0


async def test_changed_quote_rewrites_only_affected_lines(store, fake_sleep):
    seed(store)
    add_tool(
        store,
        "zephyr-embed",
        [
            {
                "name": "Moderation classifier",
                "category": "safety",
                "description": "Classifies text into harm categories with a moderation model.",
                "unique": "A moderation classifier model.",
                "quotes": [("The moderation classifier scores eleven harm categories.", True)],
                "status": "proposed",
            }
        ],
    )

    def respond(request: httpx.Request) -> httpx.Response:
        if "Moderation" in _user(request):
            return answer(None, [])
        return good(request)

    first, _ = await contrast(store, fake_sleep, respond)
    assert first.with_counterparts == 4
    with store.transaction() as s:
        s.execute(
            update(Evidence)
            .where(Evidence.quote == ORBIT_QUOTES[1][0])
            .values(quote="Fine-tuning needs at least 4 GPUs with 80 GB of memory each.")
        )
    report, route = await contrast(store, fake_sleep, respond)
    asked = sorted({by_side(c.request) for c in route.calls})
    assert asked == ["nimbus", "orbit"]  # the fine-tuning pair, not the moderation pair
    assert (report.unchanged, report.calls, report.proposed) == (2, 2, 2)
    statuses = [(r.capability_id, r.status) for r in lines(store)]
    assert statuses.count(("cap_nimbus-api_0", "superseded")) == 1
    assert statuses.count(("cap_nimbus-api_0", "proposed")) == 1


async def test_new_tool_proposes_lines_for_the_tools_it_counters(store, fake_sleep):
    seed(store)
    await contrast(store, fake_sleep, good)
    add_tool(
        store,
        "comet-tune",
        [
            {
                "name": "Fine-tuning service",
                "category": "fine-tuning",
                "description": "Fine-tune hosted models on your own training data.",
                "unique": "Managed fine-tuning jobs.",
                "quotes": [("Fine-tuning jobs train on up to 5,000 examples.", True)],
                "status": "proposed",
            }
        ],
    )

    def respond(request: httpx.Request) -> httpx.Response:
        return answer(None, [])

    report, route = await contrast(store, fake_sleep, respond, tools=None)
    asked = {_user(c.request).splitlines()[0] for c in route.calls}
    assert any("(Comet Tune)" in a for a in asked)
    assert any("(Nimbus API)" in a for a in asked)
    assert report.calls == len(route.calls)


def test_a_tool_name_glued_to_a_number_is_not_a_number():
    from decomposer.contrast.checker import Given, Quote, aliases, check

    given = Given(
        tool="Mistral API",
        tools={
            "Mistral API": aliases("Mistral API", "Mistral AI"),
            "Llama 4": aliases("Llama 4", "Meta"),
        },
        quotes={
            "Q1": Quote("Q1", "Mistral API", "Fine-tuning trains on your dataset."),
            "Q2": Quote("Q2", "Llama 4", "Fine-Tuning Tutorial for Llama4 Models"),
        },
        facts={},
        material="Fine-tuning trains on your dataset. Fine-Tuning Tutorial for Llama4 Models",
    )
    line = (
        'Mistral API documents "Fine-tuning trains on your dataset."; '
        'Llama 4 has a "Fine-Tuning Tutorial for Llama4 Models".'
    )
    assert check(line, ["Q1", "Q2"], given) == []
    invented = check(line.replace("has a", "has 3"), ["Q1", "Q2"], given)
    assert [f.cause for f in invented] == ["invented_number"]


def _given():
    from decomposer.contrast.checker import Given, Quote, aliases

    quotes = {
        "Q1": Quote("Q1", "Nimbus API", NIMBUS_QUOTES[0][0]),
        "Q2": Quote("Q2", "Orbit Model", ORBIT_QUOTES[1][0]),
    }
    return Given(
        tool="Nimbus API",
        tools={
            "Nimbus API": aliases("Nimbus API", "Nimbus Labs"),
            "Orbit Model": aliases("Orbit Model", "Orbit AI"),
        },
        quotes=quotes,
        facts={"Nimbus API": "starting price: $0.1 per 1M input tokens", "Orbit Model": ""},
        material="\n".join(q.text for q in quotes.values()),
    )


@pytest.mark.parametrize(
    ("line", "causes"),
    [
        (
            "Nimbus API files hold up to 10,000 training examples, more data per job than "
            "Orbit Model needs hardware for: at least 2 GPUs with 80 GB of memory each.",
            [],
        ),
        ("Nimbus API starts at $0.1 per 1M input tokens, while Orbit Model needs 2 GPUs.", []),
        (
            "Nimbus API starts at $0.2 per 1M input tokens, while Orbit Model needs 2 GPUs.",
            ["invented_number"],
        ),
        (
            "Nimbus API fits 10,000 GB per file, while Orbit Model needs 2 GPUs.",
            ["invented_number"],
        ),
        (
            'Nimbus API says "jobs accept unlimited examples", while Orbit Model needs 2 GPUs.',
            ["misquote"],
        ),
        (
            "Nimbus API takes files. Orbit Model needs 2 GPUs. Both fine-tune.",
            ["too_long"],
        ),
        ("Nimbus API takes files of up to 10,000 training examples.", ["no_counterpart"]),
        (
            "Nimbus API takes files, while Orbit Model needs 2 GPUs, unlike Zephyrix Cloud.",
            ["unknown_tool"],
        ),
        (
            'Nimbus API is "seamless", while Orbit Model needs 2 GPUs.',
            ["misquote"],
        ),
    ],
)
def test_checker_cases(line, causes):
    from decomposer.contrast.checker import check

    assert [f.cause for f in check(line, ["Q1", "Q2"], _given())] == causes
