"""Consolidation: same capability across chunks merges; ids are stable and reuse existing ones."""

from __future__ import annotations

import pytest

from decomposer.extraction.consolidate import (
    Finding,
    SourceChunk,
    capability_id,
    consolidate,
    resolve_quotes,
    same_capability,
)
from decomposer.extraction.schema import ExtractedCapability

CHUNKS = [
    SourceChunk("c1", 1, 0, "Mistral supports function calling with parallel tool calls."),
    SourceChunk("c2", 2, 500, "Use JSON mode to get valid JSON. Function calling also works."),
]


def finding(name: str, quote: str, category: str = "function-calling") -> Finding:
    claim = ExtractedCapability(
        name=name,
        category=category,
        description=f"{name} description",
        unique="u",
        vs_alternatives="v",
        evidence=[quote],
    )
    return Finding(claim, resolve_quotes([quote], CHUNKS))


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("function calling", "function calling", True),
        ("structured json output", "json output structured", True),
        ("point in time recovery", "point in time recovery pitr", True),
        ("embeddings", "batch embeddings", False),
        ("fine tuning", "vision", False),
        ("llama 3 support", "llama 4 support", False),
        ("capability 1 feature number 0", "capability 1 feature number 1", False),
    ],
)
def test_same_capability(a, b, same):
    assert same_capability(a, b) is same


def test_quotes_resolve_to_document_offsets():
    [q] = resolve_quotes(["Function calling also works"], CHUNKS)
    assert (q.document_id, q.chunk_id) == (2, "c2")
    assert CHUNKS[1].text[q.start - 500 : q.end - 500] == "Function calling also works"
    [missing] = resolve_quotes(["something never said in the docs"], CHUNKS)
    assert not missing.grounded and missing.start is None


def test_findings_merge_into_one_record_with_all_evidence():
    records = consolidate(
        "mistral-api",
        [
            finding("Function calling", "supports function calling with parallel tool calls"),
            finding("Function Calling", "Function calling also works"),
            finding("JSON mode", "Use JSON mode to get valid JSON", "structured-output"),
        ],
        existing={},
    )
    assert [r.key for r in records] == ["function calling", "json mode"]
    assert len(records[0].quotes()) == 2
    assert records[0].id == capability_id("mistral-api", "function calling")
    assert records[0].grounded


def test_existing_record_id_is_reused_for_a_renamed_finding():
    existing = {"cap_existing": "Function-calling"}
    [record] = consolidate(
        "t", [finding("Function calling", "Function calling also works")], existing
    )
    assert record.id == "cap_existing"


def test_grounded_finding_text_wins_over_ungrounded():
    bad = finding("Function calling", "a quote that is not in any chunk at all")
    good = finding("Function calling", "Function calling also works")
    bad.claim.description = "a much longer but ungrounded description of the capability"
    [record] = consolidate("t", [bad, good], {})
    assert record.grounded
    assert record.best is good.claim


def _piece(tokens: int, name: str) -> tuple[object, str]:
    from decomposer.store.models import Chunk

    return (Chunk(id=name, tokens=tokens, heading="", text=name), f"/docs/{name}.md")


@pytest.mark.parametrize(
    ("sizes", "budget", "expected"),
    [
        ([100, 200, 300], 1000, [[100, 200, 300]]),
        ([100, 600, 100], 1000, [[100], [600], [100]]),
        ([400, 400, 400], 1000, [[400, 400], [400]]),
        ([1000], 1000, [[1000]]),
        ([], 1000, []),
    ],
    ids=[
        "small pages share a call",
        "a big chunk stands alone",
        "budget closes a group",
        "one full chunk",
        "nothing",
    ],
)
def test_pack_calls(sizes, budget, expected):
    from decomposer.extraction.run import pack_calls

    pieces = [_piece(t, f"c{i}") for i, t in enumerate(sizes)]
    groups = pack_calls(pieces, budget)  # type: ignore[arg-type]
    assert [[p[0].tokens for p in g] for g in groups] == expected
