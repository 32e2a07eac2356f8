"""Model-written summary and verdict (``--copy llm``): through the real Mistral and OpenAI SDKs and
Instructor (respx at the HTTP layer), every claim checked against the page's table, refusals
re-asked with the reason, the template copy and a note after the re-asks; disclosure on pages."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import httpx
import pytest
import respx
from hypothesis import event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from conftest import MISTRAL_URL, OPENAI_URL, SECRET, ok
from decomposer.calls.caller import ModelCaller, RetryPolicy
from decomposer.calls.prompts import load_prompt
from decomposer.catalog.score import LABELS, SUBSCORES
from decomposer.pages.claims import PageFacts
from decomposer.pages.compare import build_comparison
from decomposer.pages.copy import Copywriter
from decomposer.pages.llm_copy import COPY, PageCopy, copy_task, page_context, write_copy
from decomposer.pages.model import MODEL_MARK, Options
from decomposer.pages.render import Renderer, render_json
from decomposer.providers.base import ProviderConfig
from decomposer.providers.pricing import load_prices
from decomposer.store import open_store
from decomposer.store.models import LLMCall
from pages_support import AS_OF, REPO, build_demo, install_db, run
from test_unknown import side

NOW = datetime(2025, 7, 2, 9, 0, tzinfo=UTC)
URLS = {"mistral": MISTRAL_URL, "openai": OPENAI_URL}
MODELS = {"mistral": "mistral-small-latest", "openai": "gpt-4o-mini"}
FULL = {"adoption": 80, "quality": 60, "ecosystem": 40, "match_graph": 0, "freshness": 90}
BARE = {**FULL, "adoption": None, "ecosystem": None, "quality": 70}
GOOD = {
    "summary": "Beta Tool leads on Quality (70 vs 60), but there is not enough data to say "
    "which ranks higher.",
    "verdict": "Not enough data to compare Adoption and Ecosystem. They tie on Match Graph and "
    "Freshness. Alpha Tool has a free tier and Beta Tool does not. Alpha Tool starts at "
    "$1 / month.",
}
HOSTILE = {
    "lead-on-unknown": ("Alpha Tool leads on Adoption (80 vs 0).", "which is unknown for Beta"),
    "wrong-leader": ("Alpha Tool leads on Quality (60 vs 70).", "wrong leader on Quality"),
    "invented-price": ("Alpha Tool starts at $0.50 / month.", "0.50 is not in Alpha Tool's"),
    "invented-number": ("Beta Tool leads on Quality (75 vs 60).", "75 is not Beta Tool's Quality"),
    "tie-misreported": ("They tie on Quality.", "claims a tie on Quality, but the table has"),
    "price-where-unknown": ("Beta Tool starts at $1 / month.", "starting price is unknown"),
    "invented-competitor": ("Alpha Tool leads OpenAI on Quality.", "names 'OpenAI'"),
    "marketing": ("Alpha Tool is the best choice.", "marketing word 'best'"),
    "lead-hidden-in-unknown": (
        "Alpha Tool leads on Adoption, though Beta Tool's Adoption is unknown.",
        "mixes a lead or tie with 'not enough data'",
    ),
    "lead-hidden-in-free-tier": (
        "Alpha Tool leads on Adoption (80 vs 0) and has a free tier.",
        "one fact per sentence",
    ),
}


COPY_MARK = f"*({MODEL_MARK})*"
"""How the summary and verdict are marked; contrast lines on the demo pages carry a longer note."""


def page():
    a = side("alpha", "Alpha Tool", FULL, True, True)
    b = side("beta", "Beta Tool", BARE, False, False)
    return build_comparison(a, b, Options(as_of=date(2025, 7, 1)), Copywriter())


def caller(store, http, fake_sleep, provider="mistral", mode="json_schema"):
    return ModelCaller(
        cfg=ProviderConfig(provider, MODELS[provider], mode),
        key=SECRET,
        task=copy_task(load_prompt(COPY)),
        store=store,
        http=http,
        prices=load_prices(),
        policy=RetryPolicy(),
        sleep=fake_sleep,
        clock=lambda: NOW,
    )


def rows(store) -> list[LLMCall]:
    with store.transaction() as s:
        return list(s.scalars(select(LLMCall).order_by(LLMCall.id)))


@pytest.mark.parametrize("provider", ["mistral", "openai"])
@pytest.mark.parametrize("mode", ["json_schema", "tools"])
async def test_a_good_answer_is_accepted_marked_and_disclosed(store, fake_sleep, provider, mode):
    template = page()
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(URLS[provider]).mock(return_value=ok(GOOD, tools=mode == "tools"))
        async with httpx.AsyncClient() as http:
            c = await write_copy(caller(store, http, fake_sleep, provider, mode), template)
    sent = json.loads(route.calls.last.request.content)
    system, user = (m["content"] for m in sent["messages"])
    assert "checks every clause against the table" in system
    assert '<page title="Alpha Tool vs Beta Tool">' in user
    assert "| Adoption | 80 | — |" in user and "Ranks comparable: no" in user
    assert route.call_count == 1
    assert c.summary == GOOD["summary"] and c.verdict.text == GOOD["verdict"]
    assert c.verdict.leads == template.verdict.leads  # the structured verdict stays the table's
    data = json.loads(render_json(c))
    expected = {
        "source": "contrast",
        "model": MODELS[provider],
        "prompt_version": "copy/v1",
        "date": "2025-07-02",
        "checked": True,
    }
    assert data["provenance"] == {"summary": expected, "verdict": expected}
    assert data["copy_info"] == {"requested": "llm", "fallback_note": None}
    assert data["a"]["capabilities"] == [] or "provenance" in data["a"]["capabilities"][0]
    md, html = Renderer().render(c, "md"), Renderer().render(c, "html")
    assert f"{GOOD['verdict']} *({MODEL_MARK})*" in md
    assert f"*({MODEL_MARK})* Capability-level comparison" in md
    note = f"Text marked {MODEL_MARK} was written by {MODELS[provider]} (prompt copy/v1)"
    assert note + " on 2025-07-02 and checked against the cited evidence and the table" in md
    assert html.count(f'<sup class="badge model-written">{MODEL_MARK}</sup>') == 2
    assert '<p class="note disclosure" role="note">' in html
    [row] = rows(store)
    assert (row.task, row.outcome, row.prompt_version, row.attempts) == ("copy", "ok", "copy/v1", 1)


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("provider", ["mistral", "openai"])
async def test_hostile_answers_are_reasked_then_the_template_is_used(
    store, fake_sleep, provider, case
):
    claim, reason = HOSTILE[case]
    template = page()
    bad = {**GOOD, "verdict": claim}
    with respx.mock() as mock:
        route = mock.post(URLS[provider]).mock(return_value=ok(bad))
        async with httpx.AsyncClient() as http:
            c = await write_copy(caller(store, http, fake_sleep, provider), template)
    assert route.call_count == 3  # the first answer and two re-asks, each refused
    reask = json.dumps(json.loads(route.calls[1].request.content)["messages"][2:])
    assert "refused by the check against the table" in reask and reason in reask
    assert (c.summary, c.verdict.text) == (template.summary, template.verdict.text)
    assert claim not in render_json(c)
    assert [p.source for p in c.provenance.values()] == ["template", "template"]
    note = c.copy_info.fallback_note
    assert note is not None and "failed the check against the table" in note
    md, html = Renderer().render(c, "md"), Renderer().render(c, "html")
    assert COPY_MARK not in md and "template copy" in md
    assert '<p class="note copy-fallback" role="note">' in html
    [row] = rows(store)
    assert (row.task, row.attempts, row.outcome) == ("copy", 3, "ungrounded")


async def test_a_refused_answer_corrected_on_the_reask_is_published(store, fake_sleep):
    wrong = {**GOOD, "verdict": HOSTILE["wrong-leader"][0]}
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(side_effect=[ok(wrong), ok(GOOD)])
        async with httpx.AsyncClient() as http:
            c = await write_copy(caller(store, http, fake_sleep), page())
            again = await write_copy(caller(store, http, fake_sleep), page())
    assert route.call_count == 2
    assert c.verdict.text == GOOD["verdict"] and c.provenance["verdict"].checked is True
    assert again == c  # from the cache: same text, same date, no request
    assert [(r.outcome, r.attempts) for r in rows(store)] == [("ok", 2), ("cache_hit", 0)]


# --- property: nothing accepted claims what the table does not know ---------------------------

maybe = st.one_of(st.none(), st.integers(0, 100))
scores = st.fixed_dictionaries({n: maybe for n in SUBSCORES})
tiers = st.sampled_from([True, False, None])
NAMES = ("Alpha Tool", "Beta Tool")


@st.composite
def claims(draw, sa, sb):
    """Sentences a careless model might write: random leads, ties, numbers, prices, tiers."""
    who, other = draw(st.permutations(NAMES))
    labels = [
        LABELS[n]
        for n in draw(st.lists(st.sampled_from(SUBSCORES), min_size=1, max_size=2, unique=True))
    ]
    x, y = draw(st.integers(0, 100)), draw(st.integers(0, 100))
    if draw(st.integers(0, 3)):  # mostly the table's own numbers, so many claims are true
        mine, theirs = (sa, sb) if who == NAMES[0] else (sb, sa)
        key = next(n for n in SUBSCORES if LABELS[n] == labels[0])
        x, y = (
            mine[key] if mine[key] is not None else x,
            theirs[key] if theirs[key] is not None else y,
        )
    return draw(
        st.sampled_from(
            [
                f"{who} leads on {labels[0]} ({x} vs {y}).",
                f"{who} is stronger on {' and '.join(labels)}.",
                f"{other} trails {who} on {labels[0]}.",
                f"They tie on {' and '.join(labels)}.",
                f"{who} and {other} tie at {x}/100.",
                f"{who} ranks higher at {x}/100 vs {other} at {y}/100.",
                f"{who} starts at $1 / month.",
                f"{who} has a free tier and {other} does not.",
                "Both have a free tier.",
                f"Not enough data to compare {labels[0]}.",
                f"{who} scores {x} on {labels[0]}.",
            ]
        )
    )


def overall(a, b, facts: PageFacts) -> str:
    """A true summary, so that the verdict's random claims decide whether copy is accepted."""
    if not facts.ranks_comparable:
        return "Not enough data to say which ranks higher."
    if a.rank == b.rank:
        return f"{a.name} and {b.name} tie at {a.rank}/100."
    hi, lo = (a, b) if a.rank > b.rank else (b, a)
    return f"{hi.name} ranks higher at {hi.rank}/100 vs {lo.name} at {lo.rank}/100."


LEAD = re.compile(r"(Alpha Tool|Beta Tool) (?:leads|is stronger|ranks higher)")
TIE = re.compile(r"tie (?:on|at)")


@settings(max_examples=1000, deadline=None)
@given(scores, scores, tiers, tiers, st.booleans(), st.booleans(), st.data())
def test_accepted_copy_never_claims_what_is_unknown(sa, sb, fa, fb, pa, pb, data):
    a, b = side("alpha", NAMES[0], sa, fa, pa), side("beta", NAMES[1], sb, fb, pb)
    facts = PageFacts.of(a, b)
    summary = data.draw(st.one_of(claims(sa, sb), st.just(overall(a, b, facts))))
    verdict = " ".join(data.draw(st.lists(claims(sa, sb), min_size=1, max_size=2)))
    context = {"page": facts.model_dump(mode="json")}
    try:
        PageCopy.model_validate({"summary": summary, "verdict": verdict}, context=context)
    except ValueError:
        event("refused")
        return  # refused: Instructor re-asks, and the template copy is the fallback
    event("accepted")
    side_of = {NAMES[0]: (sa, sb, fa, pa), NAMES[1]: (sb, sa, fb, pb)}
    for sentence in re.split(r"(?<=\.) ", f"{summary} {verdict}"):
        mentioned = [n for n in SUBSCORES if LABELS[n] in sentence]
        if m := LEAD.search(sentence):
            mine, theirs, *_ = side_of[m.group(1)]
            if "ranks higher" in sentence:
                assert facts.ranks_comparable and a.rank != b.rank, sentence
            for n in mentioned:
                assert mine[n] is not None and theirs[n] is not None, sentence
                assert mine[n] > theirs[n], sentence
        if TIE.search(sentence):
            for n in mentioned:
                assert sa[n] is not None and sb[n] is not None and sa[n] == sb[n], sentence
            if " tie at " in sentence:
                assert facts.ranks_comparable and a.rank == b.rank, sentence
        if "starts at" in sentence:
            who = next(n for n in NAMES if sentence.startswith(n))
            assert side_of[who][3], sentence
        if "free tier" in sentence:
            for who in NAMES:
                if who in sentence or sentence.startswith("Both"):
                    assert side_of[who][2] is not None, sentence


def test_the_template_copy_always_passes_the_checker():
    """The checker accepts the canonical phrasing on every page shape (so its refusals are
    about claims, not style): over a grid of known, unknown, equal and different values."""
    values = (None, 0, 50, 80)
    count = 0
    for va in values:
        for vb in values:
            sa = {n: va if i % 2 else vb for i, n in enumerate(SUBSCORES)}
            sb = {n: vb if i % 3 else va for i, n in enumerate(SUBSCORES)}
            for fa, fb in ((True, False), (None, True), (False, None)):
                a, b = side("alpha", NAMES[0], sa, fa, True), side("beta", NAMES[1], sb, fb, False)
                c = build_comparison(a, b, Options(as_of=date(2025, 7, 1)), Copywriter())
                PageCopy.model_validate(
                    {"summary": c.summary, "verdict": c.verdict.text}, context=page_context(c)
                )
                count += 1
    assert count == 48


# --- the CLI: compare and regenerate through the demo store -----------------------------------


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("copy-demo"))


@pytest.fixture
def demo(demo_db, settings, monkeypatch):
    install_db(demo_db, settings.home)
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET)
    return settings


DEMO_GOOD = {
    "summary": "Mistral API leads on Quality (98 vs 91) and Freshness (92 vs 88), but there is "
    "not enough data to say which ranks higher.",
    "verdict": "Not enough data to compare Adoption and Ecosystem. They tie on Match Graph. "
    "Both have a free tier. Mistral API starts at $0.10 / 1M input tokens. "
    "Llama 4 is open weights.",
}


def llm_calls(settings) -> list[tuple[str, str]]:
    store = open_store(settings.database_url)
    with store.transaction() as s:
        out = [(r.task, r.outcome) for r in s.scalars(select(LLMCall).where(LLMCall.task == COPY))]
        assert s.scalar(select(func.count()).select_from(LLMCall)) >= len(out)
    store.dispose()
    return out


def test_compare_copy_llm_writes_a_marked_page(demo, capsys, tmp_path):
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(DEMO_GOOD))
        code, out, err = run(
            capsys, "compare", "mistral-api", "llama-4", "--as-of", AS_OF, "--copy", "llm"
        )
    assert code == 0, err
    assert route.call_count == 1
    assert f"{DEMO_GOOD['verdict']} *({MODEL_MARK})*" in out
    assert f"ranks higher. *({MODEL_MARK})* Capability-level comparison" in out
    assert "Text marked ✎ model-written was written by" in out
    assert "mistral-small-latest (prompt copy/v1)" in out
    assert SECRET not in out + err


def test_template_copy_refuses_model_options(demo, capsys):
    code, _, err = run(capsys, "compare", "mistral-api", "llama-4", "--model", "x")
    assert code == 1
    assert "need --copy llm" in err
    code, _, err = run(capsys, "compare", "mistral-api", "llama-4", "--copy", "poem")
    assert code != 0 and "unknown --copy 'poem'" in err


def test_regenerate_copy_llm_makes_no_call_on_a_second_run(demo, capsys, tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("mistral-api llama-4\n")
    args = ["regenerate", "--pairs", str(pairs), "--as-of", AS_OF, "--copy", "llm", "--json"]
    with respx.mock() as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(DEMO_GOOD))
        code, out, err = run(capsys, *args, "--out-dir", str(tmp_path / "p"))
        assert code == 0, err and json.loads(out)["written"] == 3
        assert route.call_count == 1  # one call for the pair, shared by its three formats
        code, out, err = run(capsys, *args, "--out-dir", str(tmp_path / "p"))
        assert code == 0 and json.loads(out)["written"] == 0
        code, out, err = run(capsys, *args, "--out-dir", str(tmp_path / "q"))
        assert code == 0 and json.loads(out)["written"] == 3
    assert route.call_count == 1  # unchanged re-run: nothing asked; new folder: from the cache
    assert llm_calls(demo) == [("copy", "ok"), ("copy", "cache_hit")]
    page = json.loads((tmp_path / "q" / "mistral-api-vs-llama-4.json").read_text())
    assert page["provenance"]["verdict"]["source"] == "contrast"
    assert page["verdict"]["text"] == DEMO_GOOD["verdict"]


def test_regenerate_template_is_the_default_and_asks_no_model(demo, capsys, tmp_path):
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(DEMO_GOOD))
        args = ("regenerate", "--all", "--as-of", AS_OF, "--out-dir", str(tmp_path), "--json")
        code, out, _ = run(capsys, *args)
    assert code == 0 and json.loads(out)["written"] == 3 and route.call_count == 0
    page = json.loads((tmp_path / "llama-4-vs-mistral-api.json").read_text())
    assert page["provenance"] == {
        "summary": {"source": "template"},
        "verdict": {"source": "template"},
    }
    assert page["copy_info"] == {"requested": "template", "fallback_note": None}
    assert COPY_MARK not in (tmp_path / "llama-4-vs-mistral-api.md").read_text()


def test_json_gives_each_capability_field_its_provenance(demo, capsys):
    code, out, _ = run(capsys, "compare", "mistral-api", "llama-4", "--format", "json")
    cap = json.loads(out)["a"]["capabilities"][0]
    docs = {"source": "docs"}
    assert cap["provenance"] == {"description": docs, "unique": docs, "vs_alternatives": docs}
    code, _, err = run(
        capsys,
        "edit",
        cap["id"],
        "--field",
        "unique",
        "--value",
        "Edited by hand.",
        "--reviewer",
        "me",
    )
    assert code == 0, err
    code, out, _ = run(capsys, "compare", "mistral-api", "llama-4", "--format", "json")
    edited = next(c for c in json.loads(out)["a"]["capabilities"] if c["id"] == cap["id"])
    assert edited["unique"] == "Edited by hand."
    assert edited["provenance"] == {
        "description": {"source": "docs"},
        "unique": {"source": "editor"},
        "vs_alternatives": {"source": "docs"},
    }
    code, out, _ = run(capsys, "compare", "mistral-api", "llama-4")
    assert COPY_MARK not in out  # a person's edit is not model-written


def test_demo_recording_replays_offline_and_is_refused_where_its_numbers_are_wrong(demo, capsys):
    """The demo's recording was written for the demo's unreviewed page; on this store the
    table differs, so each answer is refused and the page keeps its template copy."""
    recordings = REPO / "fixtures" / "recordings"
    args = ("compare", "mistral-api", "llama-4", "--as-of", AS_OF, "--copy", "llm")
    code, out, err = run(capsys, *args, "--replay", str(recordings))
    assert code == 0, err
    assert "the summary and verdict are the template copy" in out and COPY_MARK not in out
    store = open_store(demo.database_url)
    with store.transaction() as s:
        [row] = s.scalars(select(LLMCall).where(LLMCall.task == COPY)).all()
        assert (row.attempts, row.outcome) == (3, "ungrounded")
    store.dispose()
    code, _, err = run(capsys, *args, "--replay", str(recordings / "llama-4.json"))
    assert code == 1 and "answers this page's copy request" in err


def test_switching_copy_mode_rewrites_the_pages(demo, capsys, tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("mistral-api llama-4\n")
    base = ("regenerate", "--pairs", str(pairs), "--as-of", AS_OF, "--out-dir", str(tmp_path / "p"))
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(MISTRAL_URL).mock(return_value=ok(DEMO_GOOD))
        assert json.loads(run(capsys, *base, "--json")[1])["written"] == 3
        llm = json.loads(run(capsys, *base, "--copy", "llm", "--json")[1])
        template = json.loads(run(capsys, *base, "--json")[1])
    assert (llm["written"], template["written"], route.call_count) == (3, 3, 1)
    page = (tmp_path / "p" / "mistral-api-vs-llama-4.md").read_text()
    assert COPY_MARK not in page  # back to template copy
