"""Merge the same capability found in several chunks into one record with all its evidence.

Two findings are the same capability when their normalised names are equal or their
``token_sort_ratio`` is at least ``NAME_MATCH_THRESHOLD``. Records get a stable id from the tool and
the name key, and a new finding that matches an existing record takes that record's id, so
re-extractions (and the reviews attached to records) land on the same rows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from decomposer.extraction.schema import ExtractedCapability as Claim
from decomposer.extraction.schema import locate

NAME_MATCH_THRESHOLD = 88.0
_NON_WORD = re.compile(r"[^0-9a-z]+")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class SourceChunk:
    id: str
    document_id: int
    start: int
    text: str


@dataclass(frozen=True)
class Quote:
    text: str
    document_id: int | None
    chunk_id: str | None
    start: int | None
    end: int | None
    score: float | None

    @property
    def grounded(self) -> bool:
        return self.start is not None


@dataclass
class Finding:
    """One capability as the model returned it for one call, with its quotes resolved."""

    claim: Claim
    quotes: list[Quote]

    @property
    def grounded(self) -> bool:
        return bool(self.quotes) and all(q.grounded for q in self.quotes)


@dataclass
class Record:
    id: str
    key: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def grounded(self) -> bool:
        return any(f.grounded for f in self.findings)

    @property
    def best(self) -> Claim:
        """Text from a grounded finding if any, preferring the fullest description."""
        ranked = sorted(self.findings, key=lambda f: (not f.grounded, -len(f.claim.description)))
        return ranked[0].claim

    def quotes(self) -> list[Quote]:
        seen: set[tuple[str, int | None]] = set()
        out: list[Quote] = []
        for quote in (q for f in self.findings for q in f.quotes):
            marker = (quote.text, quote.start)
            if marker not in seen:
                seen.add(marker)
                out.append(quote)
        return out


def name_key(name: str) -> str:
    return _NON_WORD.sub(" ", name.casefold()).strip()


def same_capability(a: str, b: str) -> bool:
    """Equal keys, or close names that carry the same numbers ("Llama 3" is not "Llama 4")."""
    if a == b:
        return True
    return _DIGITS.findall(a) == _DIGITS.findall(b) and (
        fuzz.token_sort_ratio(a, b) >= NAME_MATCH_THRESHOLD
    )


def capability_id(tool_slug: str, key: str) -> str:
    return "cap_" + hashlib.sha256(f"{tool_slug}\0{key}".encode()).hexdigest()[:16]


def resolve_quotes(claim_quotes: Iterable[str], chunks: Sequence[SourceChunk]) -> list[Quote]:
    """Pin every quote to a document span; unmatched quotes are kept with no span."""
    texts = [c.text for c in chunks]
    out = []
    for text in claim_quotes:
        hit = locate(text, texts)
        if hit is None:
            out.append(Quote(text, None, None, None, None, None))
            continue
        index, start, end, score = hit
        chunk = chunks[index]
        out.append(
            Quote(text, chunk.document_id, chunk.id, chunk.start + start, chunk.start + end, score)
        )
    return out


def consolidate(
    tool_slug: str, findings: Iterable[Finding], existing: dict[str, str]
) -> list[Record]:
    """Group findings into records; ``existing`` maps known record ids to their names."""
    known = [(cid, name_key(name)) for cid, name in sorted(existing.items())]
    records: list[Record] = []
    for finding in findings:
        key = name_key(finding.claim.name)
        if not key:
            continue
        record = next((r for r in records if same_capability(r.key, key)), None)
        if record is None:
            match = next((cid for cid, k in known if same_capability(k, key)), None)
            record_id = match or capability_id(tool_slug, key)
            record = next((r for r in records if r.id == record_id), None)
            if record is None:
                record = Record(id=record_id, key=key)
                records.append(record)
        record.findings.append(finding)
    return records
