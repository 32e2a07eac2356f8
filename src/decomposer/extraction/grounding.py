"""Check that evidence quotes really occur in the source text, and find where.

A model copies quotes imperfectly: it re-flows whitespace, drops markdown emphasis, changes case.
We therefore compare on a normalised form (case-folded, markdown punctuation removed, whitespace
collapsed) while keeping a map back to the original offsets, so a matched quote always resolves to
a real character span of the chunk. When no exact normalised match exists, a fuzzy alignment with
rapidfuzz is accepted at or above ``FUZZY_THRESHOLD`` (0–100, see docs/decisions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

FUZZY_THRESHOLD = 90.0
"""Minimum rapidfuzz ``partial_ratio`` for a quote that is not found exactly after normalisation."""

MIN_QUOTE_CHARS = 8
"""Shorter quotes ("API", "yes") prove nothing and are refused."""

_MARKDOWN_PUNCT = frozenset("*_`#>|~[]")


@dataclass(frozen=True, slots=True)
class Match:
    """Where a quote was found: span in the original text and how well it matched (100 = exact)."""

    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class Normalised:
    text: str
    offsets: tuple[int, ...]
    """offsets[i] is the index in the original text of normalised character i."""


def normalise(text: str) -> Normalised:
    """Case-fold, drop markdown punctuation and collapse whitespace, remembering origins."""
    out: list[str] = []
    offsets: list[int] = []
    pending_space = False
    for i, ch in enumerate(text):
        if ch in _MARKDOWN_PUNCT:
            continue
        if ch.isspace():
            pending_space = bool(out)
            continue
        if pending_space:
            out.append(" ")
            offsets.append(i)
            pending_space = False
        for folded in ch.casefold():
            out.append(_fold_quote(folded))
            offsets.append(i)
    return Normalised("".join(out), tuple(offsets))


def _fold_quote(ch: str) -> str:
    return {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
    }.get(ch, ch)


@lru_cache(maxsize=64)
def _normalised_source(text: str) -> Normalised:
    return normalise(text)


def find_quote(quote: str, source: str, threshold: float = FUZZY_THRESHOLD) -> Match | None:
    """Locate ``quote`` in ``source``; ``None`` when it is absent or too weak to count."""
    needle = normalise(quote).text
    if len(needle) < MIN_QUOTE_CHARS:
        return None
    hay = _normalised_source(source)
    if not hay.text:
        return None
    pos = hay.text.find(needle)
    if pos >= 0:
        return _span(hay, pos, pos + len(needle), 100.0)
    if len(needle) > len(hay.text):
        return None
    aligned = fuzz.partial_ratio_alignment(needle, hay.text, score_cutoff=threshold)
    if aligned is None:
        return None
    return _span(hay, aligned.dest_start, aligned.dest_end, round(aligned.score, 1))


def _span(hay: Normalised, start: int, end: int, score: float) -> Match:
    return Match(hay.offsets[start], hay.offsets[end - 1] + 1, score)
