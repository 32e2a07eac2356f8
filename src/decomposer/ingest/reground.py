"""Evidence follows its quote to a document's new version: offsets are moved to where the quoted
text now is, or cleared when the new version no longer contains it.

A document is updated in place on re-ingest, so evidence offsets recorded against the old text
would otherwise point at whatever the new text holds there (a vanished capability keeps its
evidence, and the UI highlighted unrelated text). The exact text the offsets covered in the old
version is searched verbatim in the new one; of several occurrences the one nearest the old
position wins. Evidence not found keeps its quote and document but no offsets: it is shown as
"not in the current version", never highlighted.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.store.models import Evidence, ProfileFact


@dataclass
class Regrounded:
    """How many quotes of one document kept, moved or lost their place in the new text."""

    kept: int = 0
    moved: int = 0
    lost: int = 0


def locate(span: str, text: str, near: int) -> int | None:
    """Where ``span`` occurs verbatim in ``text``, nearest to ``near``; None when absent."""
    if not span:
        return None
    best: int | None = None
    pos = text.find(span)
    while pos >= 0:
        if best is None or abs(pos - near) < abs(best - near):
            best = pos
        if pos > near:
            break
        pos = text.find(span, pos + 1)
    return best


def reground(session: Session, document_id: int, old_text: str, new_text: str) -> Regrounded:
    """Move every evidence and profile-fact span of the document from ``old_text`` to
    ``new_text``; the caller's transaction."""
    result = Regrounded()
    rows: list[Evidence | ProfileFact] = [
        *session.scalars(
            select(Evidence).where(Evidence.document_id == document_id, Evidence.start.is_not(None))
        ),
        *session.scalars(
            select(ProfileFact).where(
                ProfileFact.document_id == document_id, ProfileFact.start.is_not(None)
            )
        ),
    ]
    for row in rows:
        start, end = row.start or 0, row.end or 0
        span = old_text[start:end]
        found = locate(span, new_text, start) if end > start else None
        if found is None:
            row.start = row.end = None
            result.lost += 1
        elif found == start:
            result.kept += 1
        else:
            row.start, row.end = found, found + len(span)
            result.moved += 1
    return result
