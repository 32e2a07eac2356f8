"""Counterparts: for each capability, the closest capabilities of the *other* tools in the store.

All live capabilities with at least one grounded quote, across the whole catalogue, are embedded
together with the lexical embedder (``matching.embed``: offline, deterministic) and compared by
cosine similarity. A capability's counterparts are, per other tool, its ``PER_TOOL`` best
capabilities scoring at least ``THRESHOLD``, from at most ``MAX_TOOLS`` tools (best first).

``THRESHOLD`` is the lexical embedder's alignment threshold (0.22): on the demo tools and the
hand-built cases of tests/test_align.py the same capability described by two vendors scores
0.30–0.75 and unrelated ones 0.00–0.15, so 0.22 keeps the first and leaves out the second.
Lines are only written from these pairs, so a loose threshold would ask the model to contrast
unrelated things (and the checker would have to refuse them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from decomposer.catalog.snapshot import CapRecord, Snapshot, ToolRecord
from decomposer.core.vocab import LIVE_STATUSES
from decomposer.matching.align import similarity
from decomposer.matching.embed import LEXICAL_THRESHOLDS, LexicalEmbedder, capability_text

THRESHOLD = LEXICAL_THRESHOLDS.align
PER_TOOL = 2
MAX_TOOLS = 3


@dataclass(frozen=True)
class Counterpart:
    tool: ToolRecord
    capability: CapRecord
    similarity: float


@dataclass(frozen=True)
class Entry:
    tool: ToolRecord
    capability: CapRecord


def eligible(snapshot: Snapshot) -> list[Entry]:
    """Live capabilities with grounded evidence, in tool then id order."""
    return [
        Entry(tool, cap)
        for slug in sorted(snapshot.tools)
        for tool in (snapshot.tools[slug],)
        for cap in tool.capabilities
        if cap.status in LIVE_STATUSES and cap.grounded_quotes > 0
    ]


def find_counterparts(
    entries: Sequence[Entry],
    *,
    threshold: float = THRESHOLD,
    per_tool: int = PER_TOOL,
    max_tools: int = MAX_TOOLS,
) -> dict[str, list[Counterpart]]:
    """Capability id -> its counterparts in other tools (see the module doc), best first."""
    if not entries:
        return {}
    texts = [
        capability_text(e.capability.name, e.capability.description, e.capability.unique)
        for e in entries
    ]
    vectors, _ = LexicalEmbedder().encode(texts)
    sim = similarity(vectors, vectors)
    slugs = np.array([e.tool.slug for e in entries])
    out: dict[str, list[Counterpart]] = {}
    for i, entry in enumerate(entries):
        row = sim[i]
        others = np.flatnonzero((slugs != entry.tool.slug) & (row >= threshold))
        by_tool: dict[str, list[int]] = {}
        for j in sorted(others.tolist(), key=lambda j: (-float(row[j]), j)):
            picked = by_tool.setdefault(str(slugs[j]), [])
            if len(picked) < per_tool:
                picked.append(j)
        tools = sorted(by_tool.items(), key=lambda kv: (-float(row[kv[1][0]]), kv[0]))
        found = [
            Counterpart(entries[j].tool, entries[j].capability, round(float(row[j]), 4))
            for _, picked in tools[:max_tools]
            for j in picked
        ]
        if found:
            out[entry.capability.id] = found
    return out
