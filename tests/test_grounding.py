"""Quote matching: tolerant of whitespace, case and markdown; fuzzy above a threshold."""

from __future__ import annotations

import pytest

from decomposer.extraction.grounding import FUZZY_THRESHOLD, find_quote, normalise
from decomposer.extraction.schema import Extraction, locate

SOURCE = (
    "## Structured outputs\n\nThe API **guarantees** that replies   follow your\nJSON schema "
    "when `strict` is set. Prices start at $0.10 per 1M tokens — see “pricing”.\n"
)

FOUND = [
    ("exact", "guarantees that replies   follow your", 100.0),
    ("case and whitespace", "the api GUARANTEES that replies follow your json schema", 100.0),
    ("markdown punctuation dropped", "when strict is set", 100.0),
    ("line break inside quote", "follow your JSON schema when", 100.0),
    ("curly vs straight quotes", 'see "pricing"', 100.0),
    ("one typo", "Prices start at $0.10 per 1M tokenz", None),
]
NOT_FOUND = [
    ("paraphrase", "The API always validates every reply against a schema"),
    ("invented number", "Prices start at $0.05 per 1M tokens for everyone"),
    ("too short", "API"),
    ("empty", ""),
]


@pytest.mark.parametrize(("case", "quote", "score"), FOUND, ids=[c[0] for c in FOUND])
def test_found_quotes_resolve_to_real_spans(case, quote, score):
    match = find_quote(quote, SOURCE)
    assert match is not None, case
    if score is not None:
        assert match.score == score
    else:
        assert FUZZY_THRESHOLD <= match.score < 100
    span = normalise(SOURCE[match.start : match.end]).text
    assert span[:6] == normalise(quote).text[:6]


@pytest.mark.parametrize(("case", "quote"), NOT_FOUND, ids=[c[0] for c in NOT_FOUND])
def test_absent_or_weak_quotes_are_refused(case, quote):
    assert find_quote(quote, SOURCE) is None, case


def test_normalise_maps_back_to_original_offsets():
    original = "A  **Bold**\nword"
    norm = normalise(original)
    assert norm.text == "a bold word"
    assert len(norm.offsets) == len(norm.text)
    for ch, index in zip(norm.text, norm.offsets, strict=True):
        if ch != " ":
            assert original[index].casefold() == ch


def test_locate_prefers_exact_match_in_any_source():
    assert locate("follow your JSON schema", ["unrelated text here", SOURCE])[:1] == (1,)
    assert locate("nothing like this at all anywhere", [SOURCE]) is None


def test_validator_only_runs_with_context():
    payload = {
        "capabilities": [
            {
                "name": "X",
                "category": "other",
                "description": "d",
                "unique": "u",
                "vs_alternatives": "v",
                "evidence": ["not in the source at all!"],
            }
        ],
        "profile": {"type": None, "pricing_model": None, "starting_price": None, "free_tier": None},
    }
    assert Extraction.model_validate(payload).capabilities[0].name == "X"
    with pytest.raises(ValueError, match="not found verbatim"):
        Extraction.model_validate(payload, context={"chunks": [{"text": SOURCE}]})
