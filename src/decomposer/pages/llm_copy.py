"""Model-written summary and verdict (``--copy llm``): a task of the generic model caller whose
answer is checked claim by claim against the page's table (``pages.claims``) by an Instructor
validator, so a refused answer is re-asked with the reasons. An answer still refused after the
re-asks is never published: the page keeps its template copy and says so.

Accepted copy is marked ``contrast`` provenance with the model, the prompt version, the date it
was written (when the answer was first stored, so a cache hit keeps its date) and ``checked``.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationInfo, model_validator

from decomposer.calls.caller import ModelCaller
from decomposer.calls.prompts import Prompt
from decomposer.calls.runtime import RunSetup, open_caller
from decomposer.calls.task import Context, Task
from decomposer.core.vocab import Provenance
from decomposer.pages import claims
from decomposer.pages.claims import PageFacts, check_copy
from decomposer.pages.model import Comparison, CopyInfo, TextProvenance
from decomposer.store.models import CachedResponse

if TYPE_CHECKING:
    import httpx

    from decomposer.core.config import Settings
    from decomposer.store import Store

COPY = "copy"
COPY_MODES = ("template", "llm")
MAX_SUMMARY = 400
MAX_VERDICT = 1200
SHOWN_PROBLEMS = 12


class PageCopy(BaseModel):
    """The model's answer: a one-sentence summary and a short verdict, refused unless every
    clause is confirmed by the page's table (the ``page`` facts in the validation context)."""

    summary: str
    verdict: str

    @model_validator(mode="after")
    def _checked_against_the_table(self, info: ValidationInfo) -> PageCopy:
        page = (info.context or {}).get("page")
        if page is None:  # a cached answer, checked when it was stored
            return self
        problems = refusals(PageFacts.model_validate(page), self)
        if problems:
            shown = "\n".join(f"- {p}" for p in problems[:SHOWN_PROBLEMS])
            raise ValueError(f"refused by the check against the table:\n{shown}")
        return self


def refusals(facts: PageFacts, answer: PageCopy) -> list[str]:
    out = []
    if len(answer.summary) > MAX_SUMMARY:
        out.append(f"summary: longer than {MAX_SUMMARY} characters")
    if len(answer.verdict) > MAX_VERDICT:
        out.append(f"verdict: longer than {MAX_VERDICT} characters")
    return out + check_copy(facts, answer.summary, answer.verdict)


def copy_task(prompt: Prompt) -> Task[PageCopy]:
    return Task(name=COPY, prompt=prompt, response_model=PageCopy)


def page_context(comparison: Comparison) -> Context:
    """The page's own data, as the prompt shows it and the checker reads it."""
    return {"page": PageFacts.of(comparison.a, comparison.b).model_dump(mode="json")}


def _clean(text: str) -> str:
    return " ".join(text.split())


def written_on(store: Store, request_hash: str) -> date | None:
    """When the accepted answer was first stored: a page rebuilt from the cache keeps it."""
    with store.transaction() as session:
        row = session.get(CachedResponse, request_hash)
        return row.created_at.date() if row is not None else None


async def write_copy(caller: ModelCaller[PageCopy], comparison: Comparison) -> Comparison:
    """The comparison with checked model-written copy, or its template copy and a note."""
    context = page_context(comparison)
    result = await caller.call(context, run_id=None, chunk_id=None)
    model = caller.cfg.model
    if not result.validated:
        note = (
            f"Model-written copy was requested, but every answer of {model} (prompt "
            f"{caller.task.prompt_version}) failed the check against the table, so the summary "
            "and verdict are the template copy."
        )
        return comparison.model_copy(
            update={"copy_info": CopyInfo(requested="llm", fallback_note=note)}
        )
    digest = caller.request_hash(context)
    when = await asyncio.to_thread(written_on, caller.store, digest) or caller.clock().date()
    provenance = TextProvenance(
        source=Provenance.CONTRAST,
        model=model,
        prompt_version=caller.task.prompt_version,
        date=when,
        checked=True,
    )
    return comparison.model_copy(
        update={
            "summary": _clean(result.value.summary),
            "verdict": comparison.verdict.model_copy(update={"text": _clean(result.value.verdict)}),
            "provenance": {"summary": provenance, "verdict": provenance},
            "copy_info": CopyInfo(requested="llm"),
        }
    )


@dataclass
class ModelCopywriter:
    """A synchronous handle on one copy caller, for the CLI and page regeneration: each call
    rewrites one comparison's copy on an event loop that lives as long as the handle."""

    caller: ModelCaller[PageCopy]
    runner: asyncio.Runner = field(repr=False)
    calls: int = 0

    def __call__(self, comparison: Comparison) -> Comparison:
        self.calls += 1
        return self.runner.run(write_copy(self.caller, comparison))

    def digest(self) -> str:
        """What changes the copy besides the page: endpoint, model, prompt and the checker's
        code (part of each page's input hash, see ``pages.regenerate.run_digest``)."""
        cfg = self.caller.cfg
        code = hashlib.sha256()
        for module in (claims, sys.modules[__name__]):
            code.update(Path(str(module.__file__)).read_bytes())
        parts: list[Any] = [cfg.provider, cfg.base_url, cfg.model, cfg.mode, cfg.temperature]
        material = [COPY, *parts, self.caller.task.prompt.sha256, code.hexdigest()]
        return "|".join(str(p) for p in material)


@contextmanager
def model_copywriter(
    settings: Settings,
    store: Store,
    setup: RunSetup,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Iterator[ModelCopywriter]:
    """A ``ModelCopywriter`` on the run's rate-limited client (replay, when given)."""
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        caller = runner.run(
            stack.enter_async_context(
                open_caller(
                    settings, store, setup, copy_task, prompt_name=COPY, transport=transport
                )
            )
        )
        try:
            yield ModelCopywriter(caller, runner)
        finally:
            runner.run(stack.aclose())
