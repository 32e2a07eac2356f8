"""The demo fixtures are consistent: sample docs, tool metadata and recorded responses.

The offline demo replays ``fixtures/recordings/*.json`` instead of calling a provider, so these
files must agree with the docs they answer for: each interaction's ``match`` selects exactly
one document, every response is a valid ``Extraction`` whose quotes are found in that document,
and the one deliberately bad response really fails the grounding check (to show the re-ask).
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pydantic
import pytest

from decomposer.extraction.schema import Extraction, locate
from decomposer.ingest.chunks import chunk_document

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
DOCS = FIXTURES / "docs"
RECORDINGS = FIXTURES / "recordings"
MAX_DOC_CHARS = 10_000

TOOLS: list[dict[str, str]] = json.loads((FIXTURES / "tools.json").read_text("utf-8"))
SLUGS = [tool["slug"] for tool in TOOLS]
DOC_SUFFIXES = {".md", ".html"}
REASK_TOOL, REASK_MATCH = "mistral-api", "Structured output: JSON mode and JSON schemas"


def doc_paths(slug: str) -> list[Path]:
    return sorted(p for p in (DOCS / slug).iterdir() if p.suffix in DOC_SUFFIXES)


ALL_DOCS = [path for slug in SLUGS for path in doc_paths(slug)]


@cache
def doc_text(path: Path) -> str:
    """The text the pipeline hands to the model: HTML goes through the real converter."""
    if path.suffix == ".html":
        from decomposer.ingest.sources import load_sources  # imported here: only HTML needs it

        documents, errors = load_sources([str(path)])
        assert not errors, errors
        assert len(documents) == 1
        return documents[0].text
    return path.read_text("utf-8")


def recording(slug: str) -> list[dict[str, Any]]:
    return json.loads((RECORDINGS / f"{slug}.json").read_text("utf-8"))["interactions"]


def doc_for(slug: str, match: str) -> Path:
    hits = [path for path in doc_paths(slug) if match in doc_text(path)]
    assert len(hits) == 1, f"match {match!r} is in {len(hits)} {slug} docs: {hits}"
    return hits[0]


def extraction(response: dict[str, Any]) -> Extraction:
    return Extraction.model_validate_json(response["choices"][0]["message"]["content"])


INTERACTIONS = [
    pytest.param(slug, index, interaction, id=f"{slug}:{interaction['match']}")
    for slug in SLUGS
    for index, interaction in enumerate(recording(slug))
]


def test_tools_have_docs_and_recordings() -> None:
    assert SLUGS == ["mistral-api", "llama-4"]
    for tool in TOOLS:
        assert set(tool) == {"name", "slug", "type", "vendor", "homepage"}
        assert (RECORDINGS / f"{tool['slug']}.json").is_file()
    assert {p.name for p in DOCS.iterdir() if p.is_dir()} == set(SLUGS)
    # one per tool, plus the demo page's model-written copy (`compare --copy llm`)
    assert sorted(p.stem for p in RECORDINGS.glob("*.json")) == sorted([*SLUGS, "pages-copy"])
    assert [p.suffix for p in ALL_DOCS].count(".html") == 1
    assert 5 <= len(doc_paths("mistral-api")) <= 7
    assert 2 <= len(doc_paths("llama-4")) <= 3


@pytest.mark.parametrize("path", ALL_DOCS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_doc_is_small_enough_for_one_chunk(path: Path) -> None:
    raw = path.read_text("utf-8")
    assert 1_000 <= len(raw) < MAX_DOC_CHARS
    text = doc_text(path)
    assert len(chunk_document(path.name, text)) == 1


def test_html_converter_drops_script_and_nav() -> None:
    (html,) = [path for path in ALL_DOCS if path.suffix == ".html"]
    text = doc_text(html)
    assert "API keys, rate limits and usage tiers" in text
    assert "Rate limits apply to the whole organisation" in text
    assert "dataLayer" not in text
    assert "<p>" not in text
    assert "Models and pricing" not in text and "models-and-pricing.md" not in text


@pytest.mark.parametrize(("slug", "index", "interaction"), INTERACTIONS)
def test_match_selects_exactly_one_doc(slug: str, index: int, interaction: dict) -> None:
    match = interaction["match"]
    doc_for(slug, match)
    # The replay transport merges all recording files, so a match must not hit another tool's
    # docs either, nor the prompt templates that every request carries.
    others = [p for p in ALL_DOCS if p.parent.name != slug and match in doc_text(p)]
    assert not others
    for template in (REPO / "prompts").rglob("*.j2"):
        assert match not in template.read_text("utf-8")


@pytest.mark.parametrize("slug", SLUGS)
def test_one_interaction_per_doc(slug: str) -> None:
    matched = [doc_for(slug, i["match"]) for i in recording(slug)]
    assert sorted(matched) == doc_paths(slug)


@pytest.mark.parametrize(("slug", "index", "interaction"), INTERACTIONS)
def test_responses_are_grounded_extractions(slug: str, index: int, interaction: dict) -> None:
    path = doc_for(slug, interaction["match"])
    text = doc_text(path)
    responses = interaction["responses"]
    assert responses
    deliberately_bad = (slug, interaction["match"]) == (REASK_TOOL, REASK_MATCH)
    for position, response in enumerate(responses):
        assert response["object"] == "chat.completion"
        assert response["model"] == "mistral-small-latest"
        usage = response["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        (choice,) = response["choices"]
        assert choice["finish_reason"] == "stop"
        assert choice["message"]["role"] == "assistant"
        result = extraction(response)
        assert 2 <= len(result.capabilities) <= 4
        if deliberately_bad and position == 0:
            continue
        for quote in result.quotes():
            assert len(quote) >= 20, quote
            found = locate(quote, [text])
            assert found is not None, f"{path.name}: quote not in doc: {quote!r}"
            if path.suffix == ".md":
                assert found[3] == 100.0, f"{path.name}: quote only fuzzy-matched: {quote!r}"
        # The grounding validator Instructor runs accepts it too.
        Extraction.model_validate_json(
            choice["message"]["content"], context={"chunks": [{"text": text}]}
        )


def test_exactly_one_reask_and_its_first_response_fails_grounding() -> None:
    reasks = [
        (slug, i["match"]) for slug in SLUGS for i in recording(slug) if len(i["responses"]) > 1
    ]
    assert reasks == [(REASK_TOOL, REASK_MATCH)]
    (interaction,) = [i for i in recording(REASK_TOOL) if i["match"] == REASK_MATCH]
    bad, good = interaction["responses"]
    text = doc_text(doc_for(REASK_TOOL, REASK_MATCH))
    context = {"chunks": [{"text": text}]}

    with pytest.raises(pydantic.ValidationError, match="not found verbatim"):
        Extraction.model_validate_json(bad["choices"][0]["message"]["content"], context=context)
    Extraction.model_validate_json(good["choices"][0]["message"]["content"], context=context)

    first, second = extraction(bad), extraction(good)
    assert [c.name for c in first.capabilities] == [c.name for c in second.capabilities]
    ungrounded = [q for q in first.quotes() if locate(q, [text]) is None]
    assert len(ungrounded) == 1
    assert ungrounded[0] not in second.quotes()
    # The re-ask carries the first exchange, so it costs more prompt tokens.
    assert good["usage"]["prompt_tokens"] > bad["usage"]["prompt_tokens"]


@pytest.mark.parametrize("slug", SLUGS)
def test_some_capability_repeats_across_docs(slug: str) -> None:
    docs_by_name: dict[str, set[str]] = defaultdict(set)
    for interaction in recording(slug):
        for cap in extraction(interaction["responses"][-1]).capabilities:
            docs_by_name[cap.name.casefold()].add(interaction["match"])
    assert any(len(matches) > 1 for matches in docs_by_name.values())


def test_recordings_ignore_the_injected_instruction() -> None:
    injected = [p for p in ALL_DOCS if "ignore previous instructions" in doc_text(p).lower()]
    assert injected, "one sample doc should carry an injection attempt"
    for slug in SLUGS:
        for interaction in recording(slug):
            for response in interaction["responses"]:
                content = response["choices"][0]["message"]["content"].lower()
                assert "ignore previous instructions" not in content
                assert "delete_account" not in content


@pytest.mark.parametrize("slug", SLUGS)
def test_profile_facts_only_where_stated(slug: str) -> None:
    """Each tool's profile is filled somewhere, and no two docs contradict each other."""
    kinds: dict[str, set[str]] = defaultdict(set)
    for interaction in recording(slug):
        profile = extraction(interaction["responses"][-1]).profile
        if profile.type is not None:
            kinds["type"].add(profile.type.value)
        if profile.pricing_model is not None:
            kinds["pricing_model"].add(profile.pricing_model)
        if profile.free_tier is not None:
            kinds["free_tier"].add(str(profile.free_tier.available))
    tool = next(t for t in TOOLS if t["slug"] == slug)
    assert kinds["type"] == {tool["type"]}
    assert len(kinds["pricing_model"]) == 1
    assert kinds["free_tier"] == {"True"}
