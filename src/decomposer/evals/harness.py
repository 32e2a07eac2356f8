"""Running an eval: ingest and extract a golden set's documents into a scratch store, read back
what was extracted and what it cost, and score it.

The scratch store is a fresh SQLite file in a folder the caller owns (a temporary one from the
CLI), so an eval never reads or writes the user's records, and never answers from the user's
model-call cache: every figure is for this run's calls. The pipeline is the library's own
(``ingest``, ``model_caller``, ``run_extraction``), exactly what ``decomposer extract`` runs.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from decomposer.calls.calllog import EXTRACT
from decomposer.calls.runtime import RunSetup
from decomposer.core.errors import InputError
from decomposer.evals.golden import GoldenSet
from decomposer.evals.inputs import CostInput, ExtractedCapability, ExtractedQuote
from decomposer.evals.report import EvalReport
from decomposer.evals.runs import Answers, EvalSettings
from decomposer.evals.score import score
from decomposer.extraction.finalize import RunProgress
from decomposer.extraction.run import run_extraction
from decomposer.extraction.task import model_caller
from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS
from decomposer.ingest.documents import ingest
from decomposer.store import Store, open_store
from decomposer.store.models import (
    Capability,
    Document,
    Evidence,
    ExtractionRun,
    LLMCall,
    Tool,
)
from decomposer.store.tools import add_tool

if TYPE_CHECKING:
    import httpx

    from decomposer.core.config import Settings

SCRATCH_DB = "scratch.db"


@dataclass(frozen=True)
class EvalPlan:
    """How to run the extraction for an eval (the knobs ``decomposer extract`` has)."""

    setup: RunSetup
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    pack_tokens: int = DEFAULT_CHUNK_TOKENS
    concurrency: int = 4
    answers: Answers = "live"
    replay: str | None = None
    judge: bool = False
    """Ask the judge model about every unmatched extracted capability (``evals.judge``)."""


@dataclass(frozen=True)
class EvalOutcome:
    settings: EvalSettings
    report: EvalReport


async def run_eval(
    settings: Settings,
    golden: GoldenSet,
    plan: EvalPlan,
    scratch: Path,
    *,
    now: Callable[[], datetime],
    transport: httpx.AsyncBaseTransport | None = None,
) -> EvalOutcome:
    """Extract every tool of ``golden`` into a new store under ``scratch`` and score it.

    ``scratch`` must be a folder without a scratch store in it; it is left for the caller to
    delete (or keep, to look at what was extracted).
    """
    path = scratch / SCRATCH_DB
    if path.exists():
        raise InputError(f"{path} already exists: an eval needs an empty scratch folder")
    store = open_store(f"sqlite:///{path}")
    try:
        progress = []
        for tool in golden.tools:
            with store.transaction() as session:
                add_tool(session, tool.slug, slug=tool.slug, now=now())
            ingest(store, tool.slug, [tool.path], now=now(), budget=plan.chunk_tokens)
            async with model_caller(settings, store, plan.setup, transport=transport) as caller:
                run = await run_extraction(
                    caller, tool.slug, concurrency=plan.concurrency, pack_tokens=plan.pack_tokens
                )
            progress.append(run.progress)
        extracted = read_extracted(store)
        cost = _cost(store, progress)
        prompt_version, prompt_hash = _prompt(store)
        report = score(golden, extracted, cost=cost)
        if plan.judge:
            from decomposer.evals.judge import judge_unmatched

            report = await judge_unmatched(
                settings,
                store,
                plan.setup,
                report,
                extracted,
                read_texts(store),
                transport=transport,
            )
    finally:
        store.dispose()
    cfg = plan.setup.cfg
    eval_settings = EvalSettings(
        golden_name=golden.name,
        golden_path=golden.path,
        golden_sha256=file_sha256(Path(golden.path)),
        provider=cfg.provider,
        model=cfg.model,
        mode=cfg.mode,
        base_url=cfg.base_url,
        prompt_version=prompt_version,
        prompt_hash=prompt_hash,
        chunk_tokens=plan.chunk_tokens,
        pack_tokens=plan.pack_tokens,
        max_tokens=cfg.max_tokens,
        concurrency=plan.concurrency,
        answers=plan.answers,
        replay=plan.replay,
        code_version=code_version(),
    )
    return EvalOutcome(eval_settings, report)


def read_extracted(store: Store) -> list[ExtractedCapability]:
    """Every capability in the store as scoring reads it, evidence keyed like the golden set
    (the source key below the tool's root folder)."""
    with store.transaction() as session:
        rows = session.execute(
            select(Capability, Tool.slug)
            .join(Tool, Tool.id == Capability.tool_id)
            .options(selectinload(Capability.evidence).selectinload(Evidence.document))
            .order_by(Capability.id)
        ).all()
        return [
            ExtractedCapability(
                tool=slug,
                name=cap.name,
                category=cap.category,
                description=cap.description,
                unique=cap.unique,
                vs_alternatives=cap.vs_alternatives,
                evidence=tuple(_quote(e) for e in cap.evidence),
            )
            for cap, slug in rows
        ]


def read_texts(store: Store) -> dict[tuple[str, str], str]:
    """Every stored page's text by (tool, source below the root), for the judge."""
    with store.transaction() as session:
        rows = session.execute(
            select(Tool.slug, Document.source_key, Document.text).join(
                Tool, Tool.id == Document.tool_id
            )
        ).all()
    return {(slug, below_root(key)): text for slug, key, text in rows}


def _quote(evidence: Evidence) -> ExtractedQuote:
    doc = evidence.document
    if not evidence.grounded or doc is None or evidence.start is None or evidence.end is None:
        return ExtractedQuote(text=evidence.quote)
    return ExtractedQuote(
        text=evidence.quote,
        document=below_root(doc.source_key),
        start=evidence.start,
        end=evidence.end,
    )


def below_root(source_key: str) -> str:
    """``mistral-api/guides/vision.md`` -> ``guides/vision.md``: ingest keys a folder's files
    by the folder's name and the path below it; golden sets by the path below the root."""
    return source_key.split("/", 1)[1] if "/" in source_key else source_key


def _cost(store: Store, progress: Sequence[RunProgress]) -> CostInput:
    """Calls, tokens and $ from the runs' own totals; latency from the call log (every row in
    a scratch store belongs to this eval)."""
    with store.transaction() as session:
        latency_ms = session.scalar(
            select(func.coalesce(func.sum(LLMCall.latency_ms), 0.0)).where(
                ~LLMCall.cache_hit, LLMCall.task == EXTRACT
            )
        )
    cost: float | None = 0.0
    for p in progress:
        cost = None if cost is None or p.cost_usd is None else cost + p.cost_usd
    return CostInput(
        calls=sum(p.calls for p in progress),
        input_tokens=sum(p.input_tokens for p in progress),
        output_tokens=sum(p.output_tokens for p in progress),
        cost_usd=cost,
        latency_s=float(latency_ms or 0.0) / 1000,
    )


def _prompt(store: Store) -> tuple[str, str]:
    with store.transaction() as session:
        run = session.scalars(select(ExtractionRun).order_by(ExtractionRun.id)).first()
        return (run.prompt_version, run.prompt_hash) if run else ("", "")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_version() -> str:
    """The package version, plus the git commit (and ``-dirty``) when run from a checkout."""
    from decomposer import __version__

    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return __version__
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src", "prompts"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{head}{'-dirty' if dirty else ''}"
