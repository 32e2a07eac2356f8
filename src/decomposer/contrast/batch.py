"""Contrast calls through a provider's Batch API (``contrast --batch``, half price).

A batch buys only each call's *first* answer. ``collect`` judges every returned answer with the
same checker as the inline path (``calls.results.judge`` against the context kept with the
batch): an accepted answer goes into the answer cache and is logged at the batch price, a
refused one is logged with its rejection causes. ``contrast --batch`` then writes lines through
the inline caller only for calls whose answer is cached (free cache hits) or whose batch answer
was refused, failed or never came (asked again inline, with re-asks), and ``submit`` sends the
rest — changed inputs with no answer and no open batch — as new batches.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.calls.caller import rejection_causes
from decomposer.calls.calllog import batch_cost, cached_hashes, call_row, remember
from decomposer.calls.prompts import Prompt, load_prompt
from decomposer.calls.results import judge, payload
from decomposer.calls.runtime import RunSetup
from decomposer.calls.task import Context, Task
from decomposer.contrast.run import Planned, plan
from decomposer.contrast.task import Contrast, contrast_task
from decomposer.core.clock import Clock, Sleep, utcnow
from decomposer.core.config import Settings
from decomposer.extraction.batch_results import batch_client, batch_spec, delete_files
from decomposer.providers.base import ProviderConfig, api_key, get_provider
from decomposer.providers.pricing import PriceTable, load_prices
from decomposer.store import Store
from decomposer.store.contrast_models import ContrastBatch

ASK_INLINE = ("invalid", "error", "missing")
"""Batch outcomes whose call is asked again inline (with the checker's re-asks)."""


@dataclass
class BatchRound:
    """What one ``contrast --batch`` did with the provider's batches."""

    collected: int = 0
    pending: int = 0
    answered: int = 0
    refused: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    batch_ids: list[str] = field(default_factory=list)
    held: int = 0

    def as_json(self) -> dict[str, Any]:
        return dict(vars(self))


def custom_id(cap_id: str) -> str:
    return f"ctr-{cap_id}"


def request_hashes(
    cfg: ProviderConfig, task: Task[Contrast], todo: Sequence[Planned]
) -> dict[str, str]:
    from decomposer.calls.calllog import request_hash

    return {item.capability.id: request_hash(cfg, task, item.built.context) for item in todo}


def batch_state(session: Session) -> tuple[set[str], set[str]]:
    """Request hashes held by open batches, and those a collected batch did not answer well."""
    held: set[str] = set()
    inline: set[str] = set()
    for record in session.scalars(select(ContrastBatch)):
        for meta in record.items.values():
            if record.collected_at is None:
                held.add(meta["request_hash"])
            elif meta.get("outcome") in ASK_INLINE:
                inline.add(meta["request_hash"])
    return held, inline


async def submit(
    store: Store,
    settings: Settings,
    setup: RunSetup,
    prompt: Prompt,
    slugs: Sequence[str] | None,
    *,
    http: httpx.AsyncClient,
    report: BatchRound,
    clock: Clock = utcnow,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Send every planned call with no cached answer, no open batch and no failed batch answer."""
    cfg = setup.cfg
    task = contrast_task(prompt)
    with store.transaction() as session:
        todo, _, _ = plan(session, slugs, prompt.sha256)
        hashes = request_hashes(cfg, task, todo)
        cached = cached_hashes(session, set(hashes.values()))
        held, inline = batch_state(session)
    send = [item for item in todo if hashes[item.capability.id] not in cached | held | inline]
    report.held += sum(hashes[item.capability.id] in held for item in todo)
    if not send:
        return
    spec = batch_spec(cfg.provider)
    client = batch_client(settings, cfg.provider, setup.key, http, cfg.base_url, sleep)
    provider = get_provider(cfg.provider)
    lines: list[tuple[str, str]] = []
    items: dict[str, dict[str, Any]] = {}
    for item in send:
        cid = custom_id(item.capability.id)
        body = provider.request_body(cfg, Contrast, prompt.render(item.built.context))
        lines.append((cid, json.dumps(spec.line(cfg, cid, body), ensure_ascii=False) + "\n"))
        items[cid] = {
            "capability_id": item.capability.id,
            "request_hash": hashes[item.capability.id],
            "context": item.built.context,
        }
    for index, part in enumerate(spec.limits.split(lines), start=1):
        content = "".join(line for _, line in part).encode("utf-8")
        batch_id, file_id, state = await client.create(
            content, f"decomposer-contrast-{index}.jsonl", cfg.model, {"decomposer": "contrast"}
        )
        now = clock()
        with store.transaction() as session:
            session.add(
                ContrastBatch(
                    batch_id=batch_id,
                    provider=cfg.provider,
                    model=cfg.model,
                    mode=cfg.mode,
                    base_url=cfg.base_url,
                    prompt_version=prompt.version,
                    input_file_id=file_id,
                    status=state,
                    items={cid: items[cid] for cid, _ in part},
                    answered=0,
                    refused=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        report.sent += len(part)
        report.batch_ids.append(batch_id)


async def collect(
    store: Store,
    settings: Settings,
    *,
    http: httpx.AsyncClient,
    report: BatchRound,
    clock: Clock = utcnow,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Poll every open contrast batch; judge, cache and log the answers of finished ones."""
    with store.transaction() as session:
        open_ids = list(
            session.scalars(
                select(ContrastBatch.batch_id).where(ContrastBatch.collected_at.is_(None))
            )
        )
    prices = load_prices(settings.prices_file)
    for batch_id in open_ids:
        with store.transaction() as session:
            record = _record(session, batch_id)
            provider, base_url, status = record.provider, record.base_url, record.status
        client = batch_client(
            settings, provider, api_key(settings, provider), http, base_url, sleep
        )
        spec = batch_spec(provider)
        if status not in spec.terminal:
            remote = await client.retrieve(batch_id)
            with store.transaction() as session:
                record = _record(session, batch_id)
                record.status = remote.status
                record.output_file_id = remote.output_file_id or record.output_file_id
                record.error_file_id = remote.error_file_id or record.error_file_id
                record.updated_at = clock()
            status = remote.status
        if status not in spec.terminal:
            report.pending += 1
            continue
        with store.transaction() as session:
            record = _record(session, batch_id)
            files = [f for f in (record.output_file_id, record.error_file_id) if f]
            uploaded = record.input_file_id
        results: dict[str, dict[str, Any]] = {}
        for file_id in files:
            for line in (await client.download(file_id)).splitlines():
                item = _parse(line)
                if item is not None and isinstance(item.get("custom_id"), str):
                    results.setdefault(item["custom_id"], item)
        _store(store, settings, batch_id, results, prices, report, clock())
        await delete_files(client, [uploaded, *files])
        report.collected += 1


def _record(session: Session, batch_id: str) -> ContrastBatch:
    return session.scalars(select(ContrastBatch).where(ContrastBatch.batch_id == batch_id)).one()


def _parse(line: str) -> dict[str, Any] | None:
    try:
        item = json.loads(line) if line.strip() else None
    except ValueError:
        return None
    return item if isinstance(item, dict) else None


def _store(
    store: Store,
    settings: Settings,
    batch_id: str,
    results: dict[str, dict[str, Any]],
    prices: PriceTable,
    report: BatchRound,
    now: datetime,
) -> None:
    with store.transaction() as session:
        record = _record(session, batch_id)
        prompt = load_prompt("contrast", record.prompt_version, root=settings.prompts_dir)
        task = contrast_task(prompt)
        items = {cid: dict(meta) for cid, meta in record.items.items()}
        for cid, meta in items.items():
            item = results.get(cid)
            verdict = judge(task, item, meta["context"])
            if verdict is None:
                meta["outcome"] = "missing"
                continue
            meta["outcome"] = verdict.outcome
            causes = _causes(task, item, meta["context"]) if verdict.outcome == "invalid" else []
            for cause in causes:
                report.rejections[cause] = report.rejections.get(cause, 0) + 1
            session.add(
                call_row(
                    run_id=None,
                    chunk_id=meta["capability_id"],
                    task=task.name,
                    provider=record.provider,
                    model=record.model,
                    mode=record.mode,
                    prompt_version=task.prompt_version,
                    request_hash=meta["request_hash"],
                    outcome=verdict.outcome,
                    now=now,
                    input_tokens=verdict.input_tokens,
                    output_tokens=verdict.output_tokens,
                    cost_usd=batch_cost(
                        prices,
                        record.provider,
                        record.model,
                        verdict.input_tokens,
                        verdict.output_tokens,
                    ),
                    error=verdict.reason,
                    rejections=causes or None,
                )
            )
            if verdict.value is not None:
                remember(
                    session,
                    meta["request_hash"],
                    record.provider,
                    record.model,
                    verdict.value.model_dump_json(),
                    now,
                )
                report.answered += 1
            else:
                report.refused += 1
        record.items = items
        record.answered = sum(m.get("outcome") == "ok" for m in items.values())
        record.refused = len(items) - record.answered
        record.collected_at = record.updated_at = now


def _causes(task: Task[Contrast], item: dict[str, Any] | None, context: Context) -> list[str]:
    """The checker's causes for a refused batch answer (re-validated to read them)."""
    try:
        body = (item or {}).get("response", {}).get("body") or {}
        if isinstance(body, str):
            body = json.loads(body)
        message = (body.get("choices") or [{}])[0].get("message")
        task.validate(payload(message), context)
    except ValidationError as err:
        return rejection_causes(err)
    except (ValueError, AttributeError, IndexError, TypeError):
        return ["invalid_json"]
    return []
