"""Stored eval runs: the settings an eval ran with and its report, saved in the user's store
(table ``eval_runs``) and read back as typed records for ``eval list``, ``show`` and ``compare``.

The extraction itself lives in a scratch store that is deleted; what is kept here is enough to
say what was measured (provider, model, mode, prompt version and hash, chunk budget, code
version, golden file and its hash) and what came out (the whole ``EvalReport``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.core.errors import InputError, NotFoundError
from decomposer.evals.report import EvalReport
from decomposer.store.eval_models import EvalRunRecord

Answers = Literal["live", "replay", "harness"]
"""Where the model answers came from: the provider, recordings, or a stand-in (fake provider)."""

ANSWERS_NOTE: dict[str, str] = {
    "live": "answers from the model itself",
    "replay": "answers replayed from recordings: the figures measure those recorded answers "
    "and the pipeline, not a live model",
    "harness": "answers from a stand-in provider: the figures measure the harness (ingest, "
    "extraction, grounding, scoring), not a model",
}


class EvalSettings(BaseModel):
    """What an eval run measured: enough to run it again and to tell two runs apart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    golden_name: str
    golden_path: str
    golden_sha256: str
    provider: str
    model: str
    mode: str
    base_url: str | None = None
    prompt_version: str
    prompt_hash: str
    chunk_tokens: int
    pack_tokens: int
    max_tokens: int
    concurrency: int
    answers: Answers
    replay: str | None = None
    code_version: str

    @property
    def note(self) -> str:
        return ANSWERS_NOTE[self.answers]


class EvalRun(BaseModel):
    """One stored eval run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    created_at: datetime
    settings: EvalSettings
    report: EvalReport


def save_run(session: Session, settings: EvalSettings, report: EvalReport, now: datetime) -> int:
    """Store a finished eval run; returns its id."""
    row = EvalRunRecord(
        golden_name=settings.golden_name,
        golden_path=settings.golden_path,
        golden_sha256=settings.golden_sha256,
        provider=settings.provider,
        model=settings.model,
        mode=settings.mode,
        base_url=settings.base_url,
        prompt_version=settings.prompt_version,
        prompt_hash=settings.prompt_hash,
        chunk_tokens=settings.chunk_tokens,
        pack_tokens=settings.pack_tokens,
        answers=settings.answers,
        code_version=settings.code_version,
        created_at=now,
        settings=settings.model_dump(mode="json"),
        report=report.model_dump(mode="json"),
    )
    session.add(row)
    session.flush()
    return row.id


def list_runs(session: Session, golden: str | None = None) -> list[EvalRun]:
    """Every stored eval run, oldest first (optionally of one golden set, by name)."""
    query = select(EvalRunRecord).order_by(EvalRunRecord.id)
    if golden is not None:
        query = query.where(EvalRunRecord.golden_name == golden)
    return [_run(row) for row in session.scalars(query)]


def get_run(session: Session, ref: str) -> EvalRun:
    """A run by id, or ``latest`` for the newest one."""
    if ref == "latest":
        row = session.scalars(select(EvalRunRecord).order_by(EvalRunRecord.id.desc())).first()
        if row is None:
            raise NotFoundError("no eval runs yet", hint="run `decomposer eval GOLDEN` first")
        return _run(row)
    if not ref.isdigit():
        raise InputError(f"eval run {ref!r}: give a run id (see `decomposer eval list`) or latest")
    found = session.get(EvalRunRecord, int(ref))
    if found is None:
        raise NotFoundError(f"unknown eval run {ref}", hint="see `decomposer eval list`")
    return _run(found)


def _run(row: EvalRunRecord) -> EvalRun:
    return EvalRun(
        id=row.id,
        created_at=row.created_at,
        settings=EvalSettings.model_validate(row.settings),
        report=EvalReport.model_validate(row.report),
    )
