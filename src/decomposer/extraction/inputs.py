"""What a run's jobs are about: a tool's chunks in order, grouped per job, and the context
(template variables and grounding sources) one request is made from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.calls.prompts import untrusted
from decomposer.core.errors import InputError, NotFoundError
from decomposer.extraction import jobs
from decomposer.store.models import Chunk, Document, ExtractionRun, Job, Tool

Piece = tuple[Chunk, str]
"""A stored chunk and the source (path or URL) of its document."""


def chunks_of(session: Session, tool_id: int) -> list[Piece]:
    """A tool's chunks in reading order: by document source, then position; documents whose
    file went missing are left out."""
    rows = session.execute(
        select(Chunk, Document.source)
        .join(Document, Chunk.document_id == Document.id)
        .where(Document.tool_id == tool_id, Document.missing_since.is_(None))
        .order_by(Document.source, Chunk.ordinal)
    ).all()
    return [(chunk, source) for chunk, source in rows]


@dataclass(frozen=True)
class RunInputs:
    """What executing a run's jobs needs from the store, loaded once."""

    tool_name: str
    groups: dict[int, list[Piece]]
    total: int
    done: int


def load_inputs(session: Session, run_id: int) -> RunInputs:
    run = session.get(ExtractionRun, run_id)
    if run is None:
        raise NotFoundError(f"unknown run {run_id}")
    tool = session.get(Tool, run.tool_id)
    assert tool is not None
    run_jobs = session.scalars(select(Job).where(Job.run_id == run_id)).all()
    pieces = {chunk.id: (chunk, source) for chunk, source in chunks_of(session, tool.id)}
    missing = {cid for job in run_jobs for cid in job.chunk_ids} - set(pieces)
    if missing:
        raise InputError(
            f"run {run_id}: {len(missing)} of its chunks were replaced by a later ingest",
            hint=f"run `decomposer extract {tool.slug}` again to plan a new run",
        )
    return RunInputs(
        tool_name=tool.name,
        groups={job.id: [pieces[cid] for cid in job.chunk_ids] for job in run_jobs},
        total=len(run_jobs),
        done=sum(job.state == jobs.DONE for job in run_jobs),
    )


def load_job(session: Session, run_id: int, job_id: int) -> tuple[str, list[Piece]]:
    """One job's tool name and chunks: a worker runs one job per task, and loading the whole
    run's inputs for each would make a run of n jobs read n² chunks."""
    run, job = session.get(ExtractionRun, run_id), session.get(Job, job_id)
    if run is None or job is None or job.run_id != run_id:
        raise NotFoundError(f"unknown job {job_id} of run {run_id}")
    tool = session.get(Tool, run.tool_id)
    assert tool is not None
    rows = session.execute(
        select(Chunk, Document.source)
        .join(Document, Chunk.document_id == Document.id)
        .where(Document.tool_id == tool.id, Chunk.id.in_(job.chunk_ids))
    ).all()
    pieces = {chunk.id: (chunk, source) for chunk, source in rows}
    if set(job.chunk_ids) - set(pieces):
        raise InputError(
            f"run {run_id}: some of its chunks were replaced by a later ingest",
            hint=f"run `decomposer extract {tool.slug}` again to plan a new run",
        )
    return tool.name, [pieces[cid] for cid in job.chunk_ids]


def context_for(tool_name: str, group: Sequence[Piece]) -> dict[str, Any]:
    """The template variables and the grounding validator's source text, in one mapping.

    ``text`` is the stored text grounding checks quotes against; ``body`` is the same text
    made safe to place inside the prompt's ``<document>`` block (``calls.prompts.untrusted``).
    """
    return {
        "tool": tool_name,
        "chunks": [
            {
                "id": chunk.id,
                "source": _short_source(source),
                "heading": chunk.heading,
                "text": chunk.text,
                "body": untrusted(chunk.text),
            }
            for chunk, source in group
        ],
    }


def _short_source(source: str) -> str:
    """URLs as they are; local files by name only, so no local paths reach the provider."""
    return source if "://" in source else source.rsplit("/", 1)[-1]
