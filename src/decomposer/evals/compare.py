"""Comparing two stored eval runs: per-metric deltas, per-document wins and losses, and the
golden capabilities one run found and the other missed.

A delta is ``None`` when either side is unknown (a share with no denominator, an unpriced
model), never a number that would read as a change.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from decomposer.evals.report import EvalReport
from decomposer.evals.runs import EvalRun


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricDelta(_Out):
    metric: str
    a: float | None
    b: float | None
    delta: float | None
    higher_is_better: bool


class DocumentDelta(_Out):
    tool: str
    source: str
    golden: int
    found_a: int
    found_b: int
    outcome: str
    """``win`` (B found more), ``loss`` (B found fewer) or ``tie``."""


class CapabilityDiff(_Out):
    tool: str
    golden: str
    documents: tuple[str, ...]


class Comparison(_Out):
    a: EvalRun
    b: EvalRun
    same_golden: bool
    """Both runs scored the same golden file (same hash); otherwise the deltas mix sets."""
    settings_changed: dict[str, tuple[str, str]]
    metrics: tuple[MetricDelta, ...]
    documents: tuple[DocumentDelta, ...]
    only_a: tuple[CapabilityDiff, ...]
    only_b: tuple[CapabilityDiff, ...]


def _cost(attr: str) -> Callable[[EvalReport], float | None]:
    def get(r: EvalReport) -> float | None:
        value = getattr(r.cost, attr) if r.cost is not None else None
        return None if value is None else float(value)

    return get


def _per_correct(r: EvalReport) -> float | None:
    share = r.cost.per_correct_capability if r.cost else None
    return share.cost_usd if share else None


def _tokens(r: EvalReport) -> float | None:
    return None if r.cost is None else float(r.cost.input_tokens + r.cost.output_tokens)


METRICS: tuple[tuple[str, Callable[[EvalReport], float | None], bool], ...] = (
    ("recall", lambda r: r.capabilities.recall, True),
    ("precision", lambda r: r.capabilities.precision, True),
    ("f1", lambda r: r.capabilities.f1, True),
    ("precision with judge", lambda r: r.judge.precision if r.judge else None, True),
    ("matched", lambda r: float(r.capabilities.matched), True),
    ("extracted", lambda r: float(r.capabilities.extracted), True),
    ("same category", lambda r: r.capabilities.same_category, True),
    ("facts covered", lambda r: r.capabilities.facts_share, True),
    ("must-quotes recovered", lambda r: r.evidence.recovered_share, True),
    ("must-quotes recovered (any)", lambda r: r.evidence.recovered_any_share, True),
    ("quotes grounded", lambda r: r.evidence.grounded_share, True),
    ("unique stated", lambda r: r.fields.unique_share, True),
    ("vs alternatives stated", lambda r: r.fields.vs_alternatives_share, True),
    ("unsupported numbers", lambda r: float(len(r.fields.unsupported_numbers)), False),
    ("calls", _cost("calls"), False),
    ("tokens", _tokens, False),
    ("cost $", _cost("cost_usd"), False),
    ("latency s", _cost("latency_s"), False),
    ("$ per correct capability", _per_correct, False),
)
"""The headline figures of a report, in the order they are shown, and which way is better."""

_SETTINGS = (
    "golden_name",
    "golden_sha256",
    "provider",
    "model",
    "mode",
    "base_url",
    "prompt_version",
    "prompt_hash",
    "chunk_tokens",
    "pack_tokens",
    "max_tokens",
    "answers",
    "code_version",
)


def headline(report: EvalReport) -> list[tuple[str, float | None, bool]]:
    return [(name, get(report), better) for name, get, better in METRICS]


def compare_runs(a: EvalRun, b: EvalRun) -> Comparison:
    """What changed from run ``a`` to run ``b``."""
    metrics = []
    for name, get, better in METRICS:
        va, vb = get(a.report), get(b.report)
        delta = None if va is None or vb is None else round(vb - va, 6)
        metrics.append(MetricDelta(metric=name, a=va, b=vb, delta=delta, higher_is_better=better))
    sa, sb = a.settings.model_dump(), b.settings.model_dump()
    changed = {k: (str(sa[k]), str(sb[k])) for k in _SETTINGS if sa[k] != sb[k]}
    return Comparison(
        a=a,
        b=b,
        same_golden=a.settings.golden_sha256 == b.settings.golden_sha256,
        settings_changed=changed,
        metrics=tuple(metrics),
        documents=_documents(a.report, b.report),
        only_a=_only(a.report, b.report),
        only_b=_only(b.report, a.report),
    )


def _documents(a: EvalReport, b: EvalReport) -> tuple[DocumentDelta, ...]:
    theirs = {(d.tool, d.source): d for d in b.documents}
    rows = []
    for mine in a.documents:
        other = theirs.get((mine.tool, mine.source))
        if other is None:
            continue
        outcome = (
            "win" if other.found > mine.found else "loss" if other.found < mine.found else "tie"
        )
        rows.append(
            DocumentDelta(
                tool=mine.tool,
                source=mine.source,
                golden=mine.golden,
                found_a=mine.found,
                found_b=other.found,
                outcome=outcome,
            )
        )
    return tuple(rows)


def _only(mine: EvalReport, other: EvalReport) -> tuple[CapabilityDiff, ...]:
    """Golden capabilities ``mine`` matched and ``other`` did not."""
    found = {(m.tool, m.golden.casefold()) for m in other.matches}
    return tuple(
        CapabilityDiff(tool=m.tool, golden=m.golden, documents=m.documents)
        for m in mine.matches
        if (m.tool, m.golden.casefold()) not in found
    )
