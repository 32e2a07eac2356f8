"""Writing contrast lines incrementally: one model call per capability whose inputs changed.

A capability's inputs are its text and quotes, its counterparts' text and quotes, both tools'
catalogue rows (all in the call's context) and the prompt. Their hash is stored with the line;
when the newest line of a capability carries the same hash — whatever its status, a dropped one
included — nothing is asked. Otherwise the answer becomes a ``proposed`` line (checked), or a
``dropped`` one (refused by the checker after the re-asks, or declined by the model), and the
capability's older lines are ``superseded``; a rejected line stays rejected. A capability that
no longer has counterparts has its open lines superseded. Each line is written in its own
transaction as its call finishes, so an interrupted run keeps what it paid for, and the
capability's audit trail gets a system event.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.calls.caller import CallResult, ModelCaller
from decomposer.catalog.snapshot import CapRecord, ToolRecord, load_snapshot
from decomposer.contrast.counterparts import Counterpart, eligible, find_counterparts
from decomposer.contrast.task import Built, Contrast, build
from decomposer.core.clock import Clock, utcnow
from decomposer.core.errors import InputError, ProviderError
from decomposer.core.vocab import ContrastStatus
from decomposer.review.actions import record_event
from decomposer.store import Store
from decomposer.store.contrast_models import ContrastLine
from decomposer.store.models import Capability

OPEN = (ContrastStatus.PROPOSED, ContrastStatus.APPROVED, ContrastStatus.DROPPED)
"""Line statuses a newer line supersedes (a reviewer's rejection is kept)."""
SYSTEM_ACTOR = "contrast"


@dataclass(frozen=True)
class Planned:
    tool: ToolRecord
    capability: CapRecord
    counterparts: list[Counterpart]
    built: Built
    input_hash: str


@dataclass
class ContrastReport:
    """What one `decomposer contrast` did."""

    tools: list[str]
    capabilities: int = 0
    with_counterparts: int = 0
    unchanged: int = 0
    proposed: int = 0
    dropped: int = 0
    declined: int = 0
    superseded: int = 0
    failed: int = 0
    calls: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    rejections: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(vars(self))


def plan(
    session: Session, slugs: Sequence[str] | None, prompt_sha: str
) -> tuple[list[Planned], list[str], ContrastReport]:
    """What to ask: capabilities of ``slugs`` (all tools when None) whose inputs changed, and
    capabilities that lost their counterparts (their open lines are superseded)."""
    snapshot = load_snapshot(session, slugs)
    everything = load_snapshot(session) if slugs is not None else snapshot
    entries = eligible(everything)
    found = find_counterparts(entries)
    wanted = set(snapshot.tools)
    report = ContrastReport(tools=sorted(wanted))
    latest = _latest_lines(session, [e.capability.id for e in entries if e.tool.slug in wanted])
    todo: list[Planned] = []
    orphaned: list[str] = []
    for entry in entries:
        if entry.tool.slug not in wanted:
            continue
        report.capabilities += 1
        cps = found.get(entry.capability.id, [])
        line = latest.get(entry.capability.id)
        if not cps:
            if line is not None and line.status in OPEN:
                orphaned.append(entry.capability.id)
            continue
        report.with_counterparts += 1
        built = build(entry.tool, entry.capability, cps)
        digest = hashlib.sha256(f"{prompt_sha}\0{built.input_hash}".encode()).hexdigest()
        if (
            line is not None
            and line.input_hash == digest
            and line.status != ContrastStatus.SUPERSEDED
        ):
            report.unchanged += 1
            continue
        todo.append(Planned(entry.tool, entry.capability, cps, built, digest))
    return todo, orphaned, report


def _latest_lines(session: Session, cap_ids: list[str]) -> dict[str, ContrastLine]:
    out: dict[str, ContrastLine] = {}
    for start in range(0, len(cap_ids), 500):
        part = cap_ids[start : start + 500]
        rows = session.scalars(
            select(ContrastLine)
            .where(ContrastLine.capability_id.in_(part))
            .order_by(ContrastLine.id)
        )
        out.update((row.capability_id, row) for row in rows)
    return out


async def run_contrast(
    store: Store,
    caller: ModelCaller[Contrast],
    slugs: Sequence[str] | None,
    *,
    concurrency: int = 4,
    clock: Clock = utcnow,
    on_done: Callable[[Planned, str], None] | None = None,
    only: Callable[[Planned], bool] | None = None,
) -> ContrastReport:
    """Ask for a line for every capability whose inputs changed (those ``only`` accepts, when
    given: ``contrast --batch`` leaves the rest to a batch), and store each answer."""
    if concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    with store.transaction() as session:
        todo, orphaned, report = plan(session, slugs, caller.task.prompt.sha256)
        for cap_id in orphaned:
            report.superseded += _supersede(session, cap_id, "no counterparts left")
    if only is not None:
        todo = [item for item in todo if only(item)]
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Planned) -> None:
        async with gate:
            try:
                result = await caller.call(
                    item.built.context, run_id=None, chunk_id=item.capability.id
                )
            except ProviderError as exc:
                report.failed += 1
                report.errors.append(f"{item.capability.id}: {exc.message}")
                return
        status = await asyncio.to_thread(_store_line, store, caller, item, result, clock)
        _count(report, result, status)
        if on_done is not None:
            on_done(item, status)

    await asyncio.gather(*(one(item) for item in todo))
    return report


def _count(report: ContrastReport, result: CallResult[Contrast], status: str) -> None:
    report.calls += 0 if result.cache_hit else 1
    report.cache_hits += int(result.cache_hit)
    report.input_tokens += result.input_tokens
    report.output_tokens += result.output_tokens
    if report.cost_usd is not None:
        report.cost_usd = (
            None if result.cost_usd is None else round(report.cost_usd + result.cost_usd, 8)
        )
    for cause in result.rejections:
        report.rejections[cause] = report.rejections.get(cause, 0) + 1
    if status == ContrastStatus.PROPOSED:
        report.proposed += 1
    elif result.validated and result.value.vs_alternatives is None:
        report.declined += 1
    else:
        report.dropped += 1


def _store_line(
    store: Store,
    caller: ModelCaller[Contrast],
    item: Planned,
    result: CallResult[Contrast],
    clock: Clock,
) -> str:
    value = result.value
    text = (value.vs_alternatives or "").strip()
    checked = result.validated and bool(text)
    status = ContrastStatus.PROPOSED if checked else ContrastStatus.DROPPED
    citations = sorted({item.built.ids[c] for c in value.citations if c in item.built.ids})
    now = clock()
    with store.transaction() as session:
        _supersede(session, item.capability.id, "inputs changed")
        line = ContrastLine(
            capability_id=item.capability.id,
            status=status,
            text=text,
            model_text=text,
            citations=citations,
            counterparts=item.built.counterparts,
            input_hash=item.input_hash,
            provider=caller.cfg.provider,
            model=caller.cfg.model,
            prompt_version=caller.task.prompt_version,
            rejections=list(result.rejections),
            edited=False,
            call_id=result.call_id,
            created_at=now,
        )
        session.add(line)
        session.flush()
        if checked:
            cap = session.get(Capability, item.capability.id)
            if cap is not None:
                record_event(
                    session,
                    cap,
                    "contrast-proposed",
                    SYSTEM_ACTOR,
                    now,
                    changes={"vs_alternatives": [cap.vs_alternatives, text]},
                    from_status=cap.status,
                    system=True,
                    note=f"contrast line {line.id} ({line.model}, {line.prompt_version})",
                )
    return status


def _supersede(session: Session, cap_id: str, why: str) -> int:
    rows = session.scalars(
        select(ContrastLine).where(
            ContrastLine.capability_id == cap_id, ContrastLine.status.in_(list(OPEN))
        )
    ).all()
    for row in rows:
        row.status = ContrastStatus.SUPERSEDED
        row.note = why
    return len(rows)
