"""The optional model judge: a task on the same caller, with its own prompt (prompts/judge/),
that labels each extracted capability the golden set did not match as supported or not by the
pages its evidence came from, so precision need not assume the golden set is complete.

A "supported" verdict must quote the pages (checked like extraction's evidence, re-asked when
the quote is not there); a capability without grounded evidence is not sent, it is reported
as not judged. Verdicts are model-written and shown as such.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from decomposer.calls.prompts import Prompt
from decomposer.calls.runtime import RunSetup, open_caller
from decomposer.calls.task import Task
from decomposer.evals.inputs import ExtractedCapability
from decomposer.evals.report import EvalReport, JudgeSummary, JudgeVerdict
from decomposer.extraction.grounding import find_quote
from decomposer.store import Store

if TYPE_CHECKING:
    import httpx

    from decomposer.core.config import Settings

JUDGE = "judge"


class Verdict(BaseModel):
    """The judge's answer about one capability record."""

    model_config = ConfigDict(extra="ignore")

    supported: bool
    quote: str = ""
    reason: str

    @model_validator(mode="after")
    def _quote_is_in_the_documents(self, info: ValidationInfo) -> Verdict:
        documents = (info.context or {}).get("documents")
        if not self.supported or documents is None:
            return self
        if not self.quote.strip() or not any(
            find_quote(self.quote, str(d["text"])) for d in documents
        ):
            raise ValueError("supported needs a quote copied exactly from one of the documents")
        return self


def judge_task(prompt: Prompt) -> Task[Verdict]:
    return Task(name=JUDGE, prompt=prompt, response_model=Verdict)


async def judge_unmatched(
    settings: Settings,
    store: Store,
    setup: RunSetup,
    report: EvalReport,
    extracted: Sequence[ExtractedCapability],
    texts: Mapping[tuple[str, str], str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EvalReport:
    """``report`` with a verdict for each unmatched extracted capability, and the precision
    that counts the supported ones as correct. ``texts`` maps (tool, source) to page text."""
    by_name = {(c.tool, c.name): c for c in extracted}
    verdicts = []
    calls = tokens = 0
    cost: float | None = 0.0
    judge_setup = replace(setup, prompt_version=None)
    async with open_caller(
        settings, store, judge_setup, judge_task, prompt_name=JUDGE, transport=transport
    ) as caller:
        for row in report.unmatched:
            cap = by_name.get((row.tool, row.extracted))
            documents = [
                {"source": source, "text": texts[(row.tool, source)]}
                for source in row.evidence_documents
                if (row.tool, source) in texts
            ]
            if cap is None or not documents:
                verdicts.append(
                    JudgeVerdict(
                        tool=row.tool,
                        extracted=row.extracted,
                        supported=None,
                        reason="not judged: no grounded evidence to check against",
                    )
                )
                continue
            context: dict[str, Any] = {
                "tool": row.tool,
                "name": cap.name,
                "description": cap.description,
                "documents": documents,
            }
            result = await caller.call(context, run_id=None, chunk_id=None)
            calls += not result.cache_hit
            tokens += result.input_tokens + result.output_tokens
            cost = None if cost is None or result.cost_usd is None else cost + result.cost_usd
            verdicts.append(
                JudgeVerdict(
                    tool=row.tool,
                    extracted=row.extracted,
                    supported=result.value.supported if result.validated else None,
                    quote=result.value.quote,
                    reason=result.value.reason
                    if result.validated
                    else f"not judged: the answer failed its check ({result.value.reason})",
                )
            )
    supported = sum(v.supported is True for v in verdicts)
    caps = report.capabilities
    summary = JudgeSummary(
        model=setup.cfg.model,
        prompt_version=caller.task.prompt.version,
        judged=sum(v.supported is not None for v in verdicts),
        supported=supported,
        precision=round((caps.matched + supported) / caps.extracted, 4) if caps.extracted else None,
        calls=calls,
        tokens=tokens,
        cost_usd=None if cost is None else round(cost, 6),
        verdicts=tuple(verdicts),
    )
    return report.model_copy(update={"judge": summary})
