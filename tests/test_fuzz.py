"""Fuzzing the parsers that read user files (issue 10): ingest's HTML, MDX and front-matter
conversion, the chunker, the whole file loader, and ``match import-queries``. Whatever the
input, the only exception allowed is ``InputError``, and what comes out keeps its invariants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from decomposer.core.errors import InputError
from decomposer.ingest.chunks import MIN_CHUNK_TOKENS, chunk_document, fence_mask, split_lines
from decomposer.ingest.convert import clean_mdx, convert, html_to_markdown, split_front_matter
from decomposer.ingest.sources import MEDIA_TYPES, load_sources
from decomposer.matching.queries import MAX_QUERY_CHARS, MAX_QUERY_COUNT, parse_queries
from test_chunks import assert_invariants

T = TypeVar("T")
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

TAG = st.sampled_from(
    ["div", "p", "main", "article", "pre", "code", "h1", "h3", "ul", "li", "a", "b", "table", "td"]
)
HTML_PIECE = st.one_of(
    st.builds(lambda t: f"<{t}>", TAG),
    st.builds(lambda t: f"</{t}>", TAG),
    st.builds(lambda t, n: f"<{t}>" * n, TAG, st.integers(1, 600)),
    st.sampled_from(
        [
            '<pre class="language-py"><code>',
            "<script>x</script>",
            "<!--",
            "-->",
            "<![CDATA[",
            "<title>T</title>",
            "&amp;",
            "&#0;",
            "<br/>",
            '<a href="javascript:x">',
            "\n",
        ]
    ),
    st.text(max_size=30),
)
MD_LINE = st.one_of(
    st.sampled_from(
        [
            "---",
            "...",
            "title: 'T'",
            "title: |",
            "import X from 'y';",
            "export const a = {",
            "};",
            "<Note title='n'>",
            "</Note>",
            "<Tabs>",
            "{/* c */}",
            "```",
            "~~~",
            "# H",
            "## ",
            "",
            "<div",
            "  a={1}>",
        ]
    ),
    st.text(max_size=40).map(lambda t: t.replace("\n", " ")),
)
MARKDOWN = st.lists(MD_LINE, max_size=40).map("\n".join)


def _only_input_errors(call: Callable[[], T]) -> T | None:
    """The call's result, or None when it refused the input with a one-line ``InputError``."""
    try:
        return call()
    except InputError as exc:
        assert "\n" not in str(exc)
        return None


@FUZZ
@given(st.lists(HTML_PIECE, max_size=30).map("".join))
@example("<div>" * 5000 + "deep" + "</div>" * 5000)
def test_html_to_markdown_never_crashes(html: str) -> None:
    markdown = _only_input_errors(lambda: html_to_markdown(html))
    assert markdown is None or not markdown.startswith("\n")


@FUZZ
@given(MARKDOWN, st.sampled_from(sorted(set(MEDIA_TYPES.values()))))
def test_convert_never_crashes(text: str, media_type: str) -> None:
    result = _only_input_errors(lambda: convert(text, media_type))
    if result is not None and result[1] is not None:
        assert "\n" not in result[1]


@FUZZ
@given(MARKDOWN)
def test_front_matter_split_keeps_the_body_as_a_suffix(text: str) -> None:
    front, body = split_front_matter(text)
    assert text.endswith(body)
    if front is None:
        assert body == text


@FUZZ
@given(MARKDOWN)
def test_clean_mdx_never_crashes_and_keeps_fenced_lines(text: str) -> None:
    cleaned = clean_mdx(text)
    assert cleaned.endswith("\n")
    lines = split_lines(text)
    for line, fenced in zip(lines, fence_mask(lines), strict=True):
        if fenced:
            assert line.strip() in cleaned  # the document end is right-stripped


@FUZZ
@given(
    st.one_of(MARKDOWN, st.text(max_size=3000)),
    st.integers(MIN_CHUNK_TOKENS, 3000),
)
def test_chunks_tile_arbitrary_text(text: str, budget: int) -> None:
    assert_invariants(chunk_document("doc", text, budget), text, budget)


@FUZZ
@given(
    st.binary(max_size=400)
    | MARKDOWN.map(str.encode)
    | st.lists(HTML_PIECE).map(lambda p: "".join(p).encode()),
    st.sampled_from(sorted(MEDIA_TYPES)),
)
def test_loading_any_file_is_a_document_or_one_input_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, suffix: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"page{suffix}"
    path.write_bytes(data)
    loaded = _only_input_errors(lambda: load_sources([str(path)], max_bytes=4096))
    if loaded is not None:
        [document], _ = loaded
        assert document.text.strip() and document.title and len(document.title) <= 200
        assert "\r" not in document.text


QUERY_CELL = st.one_of(
    st.sampled_from(
        [
            "query",
            "count",
            "date",
            "q",
            "c",
            "",
            "1",
            "0",
            "10" + "0" * 30,
            "²",
            "2026-01-01",
            "2026-13-40",
        ]
    ),
    st.text(max_size=12),
)
QUERY_FILE = st.lists(st.lists(QUERY_CELL, min_size=1, max_size=4).map(",".join), max_size=12).map(
    "\n".join
)


@FUZZ
@given(QUERY_FILE | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_query_files_parse_or_fail_with_one_input_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("queries") / "q.csv"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    rows = _only_input_errors(lambda: parse_queries(Path(path)))
    for row in rows or []:
        assert row.text and len(row.text) <= MAX_QUERY_CHARS
        assert 1 <= row.count <= MAX_QUERY_COUNT
        assert row.day == "" or len(row.day) == 10
