"""Comparisons read from the store: load the two tools' snapshot, then the pure comparator."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy.orm import Session

from decomposer.catalog.snapshot import load_snapshot
from decomposer.core.errors import InputError
from decomposer.matching.embed import Embedder
from decomposer.pages.compare import compare
from decomposer.pages.copy import Copywriter
from decomposer.pages.model import Comparison, Options


def load_comparison(
    session: Session,
    a: str,
    b: str,
    *,
    options: Options,
    copy: Copywriter | None = None,
    times_matched: Mapping[str, int] | None = None,
    embedder: Embedder | None = None,
) -> Comparison:
    """The library entry point behind `decomposer compare` and the web preview.

    Comparing a tool with itself is refused before anything is read, so that error wins over
    an unknown slug.
    """
    if a == b:
        raise InputError(f"cannot compare {a} with itself", hint="name two different tools")
    snapshot = load_snapshot(session, [a, b], times_matched)
    return compare(snapshot, a, b, options=options, copy=copy, embedder=embedder)


def default_comparison(
    session: Session, a: str, b: str, as_of: date, include_unreviewed: bool
) -> Comparison:
    """The comparison with default weights and top K, as the web preview and API show it."""
    options = Options(include_unreviewed=include_unreviewed, as_of=as_of)
    return load_comparison(session, a, b, options=options, copy=Copywriter())
