"""Heading-aware chunking of a stored document into LLM-sized, contiguous pieces.

Evidence quotes are located by character offsets into the stored text, so every chunk is an
exact slice ``text[start:end]`` and the chunks tile the document without gaps or overlap.
Sections (an ATX heading and its body) are the unit of meaning: small neighbouring sections
are packed into one chunk to save LLM calls, and only a section larger than the budget is
cut, at blank lines outside code fences first, then at line breaks, then inside a line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from decomposer.core.tokens import estimate_tokens

DEFAULT_CHUNK_TOKENS = 6000
MIN_CHUNK_TOKENS = 50

_ID_LENGTH = 20
_MAX_CHARS_PER_TOKEN = 8
_MIN_ROOM_SHARE = 10
_ATX_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*\n?\Z")
_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)")


@dataclass(frozen=True, slots=True)
class TextChunk:
    """One LLM request's worth of a document; ``text == document_text[start:end]``."""

    id: str
    ordinal: int
    start: int
    end: int
    heading: str
    text: str
    tokens: int


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    heading: str
    tokens: int


@dataclass(frozen=True, slots=True)
class _Section:
    start: int
    end: int
    heading: str
    first_line: int
    end_line: int


def chunk_document(doc_key: str, text: str, budget: int = DEFAULT_CHUNK_TOKENS) -> list[TextChunk]:
    """Cut ``text`` into chunks of at most ``budget`` estimated tokens that tile it exactly.

    ``doc_key`` scopes chunk ids to one document, so an unchanged section keeps its id when
    another part of the same document changes.
    """
    if budget < MIN_CHUNK_TOKENS:
        raise ValueError(f"chunk budget must be at least {MIN_CHUNK_TOKENS} tokens, got {budget}")
    if not text:
        return []
    lines = split_lines(text)
    fenced = fence_mask(lines)
    groups: list[_Span] = []
    for section in _sections(lines, fenced):
        _pack_section(groups, text, lines, fenced, section, budget)
    return _make_chunks(doc_key, text, _fold_blank_groups(text, groups, budget))


def split_lines(text: str) -> list[str]:
    """Split at ``\\n`` only, keeping line ends, so the lines' lengths sum to ``len(text)``."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def fence_mask(lines: Sequence[str]) -> list[bool]:
    """Flag the lines of fenced code blocks (``` or ~~~, delimiters included).

    Fences may be indented (inside lists or MDX components); an unclosed fence runs to the
    end of the document, as in CommonMark.
    """
    mask: list[bool] = []
    fence: tuple[str, int] | None = None
    for line in lines:
        if fence is None:
            fence = _opening_fence(line)
            mask.append(fence is not None)
        else:
            mask.append(True)
            if _closes_fence(line, fence):
                fence = None
    return mask


def _opening_fence(line: str) -> tuple[str, int] | None:
    match = _FENCE.match(line)
    if match is None:
        return None
    marker, info = match.group(1), match.group(2)
    if marker[0] == "`" and "`" in info:
        return None
    return marker[0], len(marker)


def _closes_fence(line: str, fence: tuple[str, int]) -> bool:
    match = _FENCE.match(line)
    if match is None or match.group(2).strip():
        return False
    marker = match.group(1)
    return marker[0] == fence[0] and len(marker) >= fence[1]


def heading_of(line: str) -> tuple[int, str] | None:
    """Level and title of an ATX heading line (``## Title ##`` -> ``(2, "Title")``), else None."""
    match = _ATX_HEADING.match(line)
    if match is None:
        return None
    return len(match.group(1)), (match.group(2) or "").strip()


def _sections(lines: Sequence[str], fenced: Sequence[bool]) -> list[_Section]:
    """Split at headings outside code fences; each section knows its heading path."""
    starts: list[tuple[int, int, str]] = [(0, 0, "")]
    stack: list[tuple[int, str]] = []
    offset = 0
    for index, (line, in_fence) in enumerate(zip(lines, fenced, strict=True)):
        heading = None if in_fence else heading_of(line)
        if heading is not None:
            path = _heading_path(stack, *heading)
            if index == 0:
                starts[0] = (0, 0, path)
            else:
                starts.append((offset, index, path))
        offset += len(line)
    ends = [(start, index) for start, index, _ in starts[1:]] + [(offset, len(lines))]
    return [
        _Section(start, end, path, first_line, end_line)
        for (start, first_line, path), (end, end_line) in zip(starts, ends, strict=True)
    ]


def _heading_path(stack: list[tuple[int, str]], level: int, title: str) -> str:
    """Update the open-heading stack; an empty heading (``##``) leaves the path as it was."""
    if title:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
    return " > ".join(name for _, name in stack)


def _pack_section(
    groups: list[_Span],
    text: str,
    lines: Sequence[str],
    fenced: Sequence[bool],
    section: _Section,
    budget: int,
) -> None:
    """Add the section to the chunks being built, whole if it fits, else block by block.

    A block (or line) that fits the budget on its own is never cut; only text that has to
    be cut anyway is cut where it fills the room left in the current chunk.
    """
    heading = section.heading
    if _place(groups, _span(text, section.start, section.end, heading), budget):
        return
    for start, end in _blocks(lines, fenced, section):
        if _place(groups, _span(text, start, end, heading), budget):
            continue
        for line_start, line_end in _line_spans(text, start, end):
            if not _place(groups, _span(text, line_start, line_end, heading), budget):
                _place_cut_line(groups, text, line_start, line_end, heading, budget)


def _span(text: str, start: int, end: int, heading: str) -> _Span:
    return _Span(start, end, heading, estimate_tokens(text[start:end]))


def _place(groups: list[_Span], span: _Span, budget: int) -> bool:
    """Append the span to the last chunk if it has room, else start a chunk if it fits.

    Chunk sizes are sums of their parts' estimates; the estimate is subadditive, so the
    chunk text's own estimate is within budget too.
    """
    last = groups[-1] if groups else None
    if last is not None and last.tokens + span.tokens <= budget:
        groups[-1] = _Span(last.start, span.end, last.heading, last.tokens + span.tokens)
        return True
    if span.tokens <= budget:
        groups.append(span)
        return True
    return False


def _place_cut_line(
    groups: list[_Span], text: str, start: int, end: int, heading: str, budget: int
) -> None:
    """Cut an over-budget line into pieces, the first filling the last chunk's room."""
    position = start
    while position < end:
        room = budget - groups[-1].tokens if groups else 0
        limit = room if room >= budget // _MIN_ROOM_SHARE else budget
        cut = _longest_fit(text, position, end, limit)
        piece = _span(text, position, cut, heading)
        if limit == room:
            last = groups[-1]
            groups[-1] = _Span(last.start, cut, last.heading, last.tokens + piece.tokens)
        else:
            groups.append(piece)
        position = cut


def _blocks(
    lines: Sequence[str], fenced: Sequence[bool], section: _Section
) -> Iterator[tuple[int, int]]:
    """Spans of the section cut before each non-blank line that follows a blank line.

    Cuts inside code fences are avoided, and so are whitespace-only blocks and a block
    holding only the section's heading (it stays with the text it introduces).
    """
    offset = block_start = section.start
    previous_blank = has_content = False
    for index in range(section.first_line, section.end_line):
        line = lines[index]
        blank = not line.strip()
        if not blank and previous_blank and has_content and not fenced[index]:
            yield block_start, offset
            block_start = offset
            has_content = False
        is_heading = index == section.first_line and heading_of(line) is not None
        has_content = has_content or not (blank or is_heading)
        previous_blank = blank
        offset += len(line)
    yield block_start, section.end


def _line_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    position = start
    while position < end:
        newline = text.find("\n", position, end)
        line_end = end if newline < 0 else newline + 1
        yield position, line_end
        position = line_end


def _longest_fit(text: str, start: int, end: int, budget: int) -> int:
    """End of the longest prefix of ``text[start:end]`` within budget, preferring a space.

    Any ``budget`` characters fit (no character costs more than one token) and the estimate
    never falls as a prefix grows, so a binary search finds the longest fitting prefix.
    Spaces are free, so the search window is capped at a few characters per token.
    """
    high = min(end, start + budget * _MAX_CHARS_PER_TOKEN)
    if estimate_tokens(text[start:high]) <= budget:
        fit = high
    else:
        low = min(end, start + budget)
        while high - low > 1:
            middle = (low + high) // 2
            if estimate_tokens(text[start:middle]) <= budget:
                low = middle
            else:
                high = middle
        fit = low
    if fit == end:
        return fit
    space = max(text.rfind(" ", start, fit), text.rfind("\t", start, fit))
    return space + 1 if space >= start + (fit - start) // 2 else fit


def _fold_blank_groups(text: str, groups: Sequence[_Span], budget: int) -> list[_Span]:
    """Fold whitespace-only chunks into a neighbour where the merged text stays in budget."""
    folded: list[_Span] = []
    for group in groups:
        last = folded[-1] if folded else None
        if last is not None and not text[last.start : last.end].strip():
            merged = _span(text, last.start, group.end, group.heading)
        elif last is not None and not text[group.start : group.end].strip():
            merged = _span(text, last.start, group.end, last.heading)
        else:
            merged = None
        if merged is not None and merged.tokens <= budget:
            folded[-1] = merged
        else:
            folded.append(group)
    return folded


def _make_chunks(doc_key: str, text: str, groups: Sequence[_Span]) -> list[TextChunk]:
    chunks: list[TextChunk] = []
    seen: dict[str, int] = {}
    for ordinal, group in enumerate(groups):
        body = text[group.start : group.end]
        chunk_id = _chunk_id(doc_key, body, seen)
        tokens = estimate_tokens(body)
        chunks.append(
            TextChunk(chunk_id, ordinal, group.start, group.end, group.heading, body, tokens)
        )
    return chunks


def _chunk_id(doc_key: str, body: str, seen: dict[str, int]) -> str:
    """Content-derived id; a repeat of identical text in one document gets a numbered id."""
    chunk_id = _digest(f"{doc_key}\0{body}")
    repeats = seen.get(chunk_id, 0)
    seen[chunk_id] = repeats + 1
    return _digest(f"{doc_key}\0{body}\0{repeats}") if repeats else chunk_id


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:_ID_LENGTH]
