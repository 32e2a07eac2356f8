"""Why a command found or wrote nothing, with the command to run next (``regenerate``, ``match
similar``), worked out from the same snapshot the library used.

Kept in the CLI so the library's results stay plain data; imported only when there is nothing to
show, so it costs nothing otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _shown(session: Session, include_unreviewed: bool) -> tuple[list[str], list[str]]:
    """Slugs of every tool, and of those with capabilities a page or a match would use."""
    from decomposer.catalog.snapshot import comparable, load_snapshot

    snapshot = load_snapshot(session, None, {})
    tools = sorted(snapshot.tools)
    usable = [s for s in tools if comparable(snapshot.tools[s].capabilities, include_unreviewed)]
    return tools, usable


def _approve_hint(slugs: list[str]) -> str:
    example = slugs[0] if slugs else "TOOL"
    return (
        f"approve some with `decomposer review {example}` (or `decomposer approve --tool "
        f"{example}`), or pass --include-unreviewed to use drafts"
    )


def no_pages(session: Session, include_unreviewed: bool) -> str:
    """Why ``regenerate --all`` found no pair of tools to write pages for."""
    from decomposer.catalog.snapshot import load_snapshot
    from decomposer.pages.regenerate import tool_categories

    tools, usable = _shown(session, include_unreviewed)
    drafts = "" if include_unreviewed else "approved "
    if len(tools) < 2:
        return (
            f"{len(tools)} tool(s) in the store; a page compares two — add one with "
            "`decomposer tool add NAME`, then `decomposer ingest` and `decomposer extract`"
        )
    if len(usable) < 2:
        missing = [s for s in tools if s not in usable]
        hint = (
            _approve_hint(missing)
            if not include_unreviewed
            else f"run `decomposer extract {missing[0]}`"
        )
        return f"{len(usable)} of {len(tools)} tools have {drafts}capabilities — {hint}"
    snapshot = load_snapshot(session, usable, {})
    categories = "; ".join(
        f"{s}: {', '.join(sorted(tool_categories(snapshot, s, include_unreviewed)))}"
        for s in usable
    )
    return (
        f"no two tools share a category ({categories}) — compare a pair anyway with "
        f"`decomposer compare {usable[0]} {usable[1]}` or `decomposer regenerate --pairs FILE`"
    )


def no_similar(session: Session, slug: str, include_unreviewed: bool, threshold: str) -> str:
    """Why ``match similar`` found no alternative to ``slug``."""
    tools, usable = _shown(session, include_unreviewed)
    others = [s for s in tools if s != slug]
    drafts = "" if include_unreviewed else "approved "
    if not others:
        return f"{slug} is the only tool — add another with `decomposer tool add NAME`"
    if not [s for s in usable if s != slug]:
        hint = (
            _approve_hint(others)
            if not include_unreviewed
            else f"run `decomposer extract {others[0]}`"
        )
        return f"no other tool has {drafts}capabilities to compare with — {hint}"
    return (
        f"no capability of the {len(usable) - 1} other tool(s) with {drafts}capabilities is "
        f"similar enough to one of {slug}'s (threshold {threshold}) — try a lower --threshold "
        "or --embedder mistral"
    )
