from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decomposer.core.tokens import estimate_tokens
from decomposer.ingest.chunks import (
    DEFAULT_CHUNK_TOKENS,
    TextChunk,
    chunk_document,
    fence_mask,
    heading_of,
    split_lines,
)
from decomposer.ingest.sources import load_sources

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")


def paragraph(seed: str, words: int) -> str:
    return " ".join(f"{seed}{i}" for i in range(words)) + ".\n"


def assert_invariants(chunks: list[TextChunk], text: str, budget: int) -> None:
    assert "".join(chunk.text for chunk in chunks) == text
    position = 0
    for ordinal, chunk in enumerate(chunks):
        assert chunk.ordinal == ordinal
        assert chunk.start == position < chunk.end
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.tokens == estimate_tokens(chunk.text) <= budget
        assert re.fullmatch(r"[0-9a-f]{20}", chunk.id)
        position = chunk.end
    assert position == len(text)
    assert len({chunk.id for chunk in chunks}) == len(chunks)
    for before, chunk, after in zip([None, *chunks], chunks, [*chunks[1:], None], strict=False):
        if not chunk.text.strip():
            for neighbour in (before, after):
                if neighbour is not None:
                    lo, hi = min(chunk.start, neighbour.start), max(chunk.end, neighbour.end)
                    assert estimate_tokens(text[lo:hi]) > budget, "blank chunk not folded"


def fence_ranges(text: str) -> list[tuple[int, int]]:
    """Character ranges strictly inside fenced blocks (after the opening line)."""
    ranges, offset, start = [], 0, None
    lines = split_lines(text)
    for line, fenced in zip(lines, fence_mask(lines), strict=True):
        if fenced and start is None:
            start = offset + len(line)
        elif not fenced and start is not None:
            ranges.append((start, offset))
            start = None
        offset += len(line)
    if start is not None:
        ranges.append((start, offset))
    return ranges


# --- helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("a", ["a"]),
        ("a\n", ["a\n"]),
        ("a\n\nb", ["a\n", "\n", "b"]),
        ("a\r\nb\x0cc\u2028d\n", ["a\r\n", "b\x0cc\u2028d\n"]),
    ],
)
def test_split_lines_only_at_newlines(text: str, lines: list[str]):
    assert split_lines(text) == lines


@pytest.mark.parametrize(
    ("line", "heading"),
    [
        ("# Title\n", (1, "Title")),
        ("###### Deep", (6, "Deep")),
        ("## Closed ##\n", (2, "Closed")),
        ("## C# and F#\n", (2, "C# and F#")),
        ("   # Indented three\n", (1, "Indented three")),
        ("#\n", (1, "")),
        ("#hashtag\n", None),
        ("####### seven\n", None),
        ("    # four spaces is code\n", None),
        ("Text # not heading\n", None),
    ],
)
def test_heading_of(line: str, heading: tuple[int, str] | None):
    assert heading_of(line) == heading


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("a\n```\n# x\n```\nb\n", [False, True, True, True, False]),
        ("~~~\n```\n~~~\nb\n", [True, True, True, False]),
        ("````md\n```\n````\nb\n", [True, True, True, False]),
        ("  ```python\n  # x\n  ```\nb\n", [True, True, True, False]),
        ("```js ``inline``\nb\n", [False, False]),
        ("```\nnever closed\n# x\n", [True, True, True]),
        ("```\n``` not a close\n```\n", [True, True, True]),
    ],
)
def test_fence_mask(text: str, mask: list[bool]):
    assert fence_mask(split_lines(text)) == mask


# --- synthetic documents ---------------------------------------------------------------


@pytest.mark.parametrize("budget", [-1, 0, 49])
def test_budget_too_small(budget: int):
    with pytest.raises(ValueError, match="at least 50"):
        chunk_document("doc", "# A\n", budget)


def test_empty_document_has_no_chunks():
    assert chunk_document("doc", "") == []


@pytest.mark.parametrize("text", [" ", "\n\n\n", " \t\n  \n"])
def test_whitespace_only_document_is_one_chunk(text: str):
    [chunk] = chunk_document("doc", text)
    assert (chunk.start, chunk.end, chunk.text) == (0, len(text), text)


def test_small_sections_share_one_chunk():
    text = "".join(f"## Section {i}\n\n{paragraph(f's{i}w', 20)}\n" for i in range(30))
    chunks = chunk_document("doc", text)
    assert len(chunks) == 1
    assert chunks[0].heading == "Section 0"
    assert_invariants(chunks, text, DEFAULT_CHUNK_TOKENS)


def test_packing_is_greedy():
    text = "".join(f"## Section {i}\n\n{paragraph(f's{i}w', 20)}\n" for i in range(30))
    budget = 200
    chunks = chunk_document("doc", text, budget)
    assert_invariants(chunks, text, budget)
    section_tokens = estimate_tokens(f"## Section 10\n\n{paragraph('s10w', 20)}\n")
    assert len(chunks) <= math.ceil(30 / (budget // section_tokens))
    for chunk in chunks:
        assert chunk.text.startswith("## Section ")


def test_heading_paths():
    body = (
        "Some words about this part of the guide, enough to fill more than half of a small "
        "chunk, so that no two sections fit together.\n\n"
    )
    titles = ["", "# Guide", "## Models", "### Large", "## Pricing", "#", "# Other"]
    text = "".join(f"{title}\n\n{body}" if title else body for title in titles)
    budget = 50
    assert budget // 2 < estimate_tokens(f"## Models\n\n{body}") <= budget
    chunks = chunk_document("doc", text, budget)
    assert_invariants(chunks, text, budget)
    assert [chunk.heading for chunk in chunks] == [
        "",
        "Guide",
        "Guide > Models",
        "Guide > Models > Large",
        "Guide > Pricing",
        "Guide > Pricing",
        "Other",
    ]


def test_headings_inside_code_fences_do_not_start_sections():
    code = "".join(f"# step {i}\nx_{i} = compute({i})\n\n" for i in range(15))
    fences = f"```python\n{code}```\n\n~~~\n# also not\n~~~\n\n"
    text = f"# Setup\n\nRun this:\n\n{fences}## After\n\nDone.\n"
    chunks = chunk_document("doc", text, 3000)
    assert [c.heading for c in chunks] == ["Setup"]
    small = chunk_document("doc", text, 120)
    assert_invariants(small, text, 120)
    assert all("step" not in chunk.heading and "also" not in chunk.heading for chunk in small)


def test_oversized_section_splits_at_blank_lines():
    text = "# Big\n\n" + "".join(f"{paragraph(f'p{i}w', 25)}\n" for i in range(20))
    budget = 150
    chunks = chunk_document("doc", text, budget)
    assert_invariants(chunks, text, budget)
    assert len(chunks) > 1
    for chunk in chunks[1:]:
        assert text[chunk.start - 2 : chunk.start] == "\n\n"
        assert chunk.heading == "Big"


def test_split_avoids_code_fences_when_they_fit():
    prose = "".join(f"{paragraph(f'p{i}w', 30)}\n" for i in range(6))
    code = "```python\n" + "".join(f"value_{i} = {i}\n\n" for i in range(20)) + "```\n\n"
    text = "# Mixed\n\n" + prose + code + prose + code + prose
    budget = 300
    assert estimate_tokens(code) < budget
    chunks = chunk_document("doc", text, budget)
    assert_invariants(chunks, text, budget)
    for chunk in chunks[1:]:
        assert not any(start <= chunk.start < end for start, end in fence_ranges(text))


def test_huge_code_block_is_split_at_lines():
    text = "# Output\n\n```json\n" + "".join(f'  "key_{i}": {i},\n' for i in range(2000)) + "```\n"
    budget = 500
    chunks = chunk_document("doc", text, budget)
    assert_invariants(chunks, text, budget)
    assert all(chunk.text.endswith("\n") for chunk in chunks)


@pytest.mark.parametrize(
    "line",
    [
        "x" * 50_000,
        "<|patch|>" * 5_000,
        "结构化输出是一种强制大语言模型" * 2_000,
        "word " * 20_000,
    ],
    ids=["letters", "symbols", "cjk", "words"],
)
@pytest.mark.parametrize("budget", [50, 333, 3000])
def test_long_lines_are_cut_within_budget(line: str, budget: int):
    text = f"# Long\n\n{line}\n\nAfter.\n"
    chunks = chunk_document("doc", text, budget)
    assert_invariants(chunks, text, budget)


def test_long_line_prefers_cutting_after_a_space():
    text = "word " * 5_000
    chunks = chunk_document("doc", text, 100)
    assert_invariants(chunks, text, 100)
    assert all(chunk.text.endswith(" ") for chunk in chunks)


def test_leading_and_trailing_whitespace_is_kept_in_chunks():
    body = "".join(f"## S{i}\n\n{paragraph(f's{i}w', 30)}\n" for i in range(6))
    text = "\n\n\n   \n" + body + "\n\n\n  \n"
    for budget in (50, 100, 3000):
        assert_invariants(chunk_document("doc", text, budget), text, budget)


def test_ids_are_stable_when_a_later_section_changes():
    sections = [f"## Part {i}\n\n{paragraph(f'p{i}w', 60)}\n" for i in range(4)]
    budget = 300
    assert budget // 2 < estimate_tokens(sections[0]) <= budget
    before = chunk_document("tool:doc", "".join(sections), budget)
    after = chunk_document("tool:doc", "".join([*sections[:3], sections[3] + "Added.\n"]), budget)
    assert len(before) == len(after) == 4
    assert [c.id for c in before[:3]] == [c.id for c in after[:3]]
    assert before[3].id != after[3].id


def test_oversized_section_fills_the_room_left_by_its_heading():
    text = f"## Part\n\n{paragraph('w', 400)}"
    chunks = chunk_document("doc", text, 300)
    assert_invariants(chunks, text, 300)
    assert chunks[0].text.startswith("## Part\n\nw0 w1")
    assert chunks[0].tokens > 250


def test_ids_depend_on_document_key_and_repeat_text_gets_a_new_id():
    section = f"## Same\n\n{paragraph('w', 75)}\n"
    assert 150 < estimate_tokens(section) <= 300
    chunks = chunk_document("a", section * 3, 300)
    assert len(chunks) == 3
    assert len({c.id for c in chunks}) == 3
    assert chunk_document("b", section)[0].id != chunk_document("a", section)[0].id
    assert chunks[0].id == chunk_document("a", section)[0].id


# --- property test ---------------------------------------------------------------------

LINE = st.one_of(
    st.just(""),
    st.just("```"),
    st.just("~~~"),
    st.just("```python"),
    st.just("    ```"),
    st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 7), st.text("abc ", max_size=8)),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"), max_size=80),
    st.builds(lambda n: "x" * n, st.integers(100, 3000)),
    st.builds(lambda n: "语" * n, st.integers(10, 400)),
    st.sampled_from(["   ", "\t", "<Tabs>", "| a | b |", "- item", "import os"]),
)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(LINE, max_size=60),
    ending=st.sampled_from(["", "\n", "\n\n", "\r\n"]),
    budget=st.integers(50, 400),
)
def test_chunk_invariants_on_random_markdown(lines: list[str], ending: str, budget: int):
    text = "\n".join(lines) + ending
    assert_invariants(chunk_document("doc", text, budget), text, budget)


# --- the real corpus -------------------------------------------------------------------


def corpus_paths() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.suffix in (".md", ".mdx"))


@pytest.fixture(scope="module")
def corpus_texts() -> dict[str, str]:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    documents, _ = load_sources([str(CORPUS)])
    return {document.source: document.text for document in documents}


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("path", corpus_paths(), ids=lambda p: p.relative_to(CORPUS).as_posix())
@pytest.mark.parametrize("budget", [DEFAULT_CHUNK_TOKENS, 800, 50])
def test_corpus_raw_files(path: Path, budget: int):
    text = path.read_text(encoding="utf-8")
    chunks = chunk_document(path.name, text, budget)
    assert_invariants(chunks, text, budget)
    outside = {h[1] for line in _outside_fences(text) if (h := heading_of(line))}
    for chunk in chunks:
        assert set(filter(None, chunk.heading.split(" > "))) <= outside


def _outside_fences(text: str) -> list[str]:
    lines = split_lines(text)
    return [line for line, fenced in zip(lines, fence_mask(lines), strict=True) if not fenced]


@needs_corpus
@pytest.mark.corpus
def test_corpus_documents_pack_into_few_chunks(corpus_texts: dict[str, str]):
    total = 0
    for source, text in corpus_texts.items():
        chunks = chunk_document(source, text)
        assert_invariants(chunks, text, DEFAULT_CHUNK_TOKENS)
        floor = math.ceil(estimate_tokens(text) / DEFAULT_CHUNK_TOKENS)
        assert len(chunks) <= 2 * floor + 1, source
        total += len(chunks)
    assert total <= 80


@needs_corpus
@pytest.mark.corpus
def test_corpus_chunks_fast(corpus_texts: dict[str, str]):
    # CPU time of this process, not wall-clock, so other processes' load cannot move it.
    started = time.process_time()
    for source, text in corpus_texts.items():
        chunk_document(source, text)
    assert time.process_time() - started < 2.0
