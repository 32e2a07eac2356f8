"""Extraction as a task of the generic model caller: the prompt, the ``Extraction`` answer and
the caller that run planning, workers, Batch collection and the CLI hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from decomposer.calls.caller import CallResult, ModelCaller
from decomposer.calls.calllog import EXTRACT
from decomposer.calls.prompts import Prompt
from decomposer.calls.retry import RetryPolicy
from decomposer.calls.runtime import RunSetup, open_caller
from decomposer.calls.task import Context, Task
from decomposer.core.clock import Clock, Sleep, utcnow
from decomposer.core.config import Settings
from decomposer.extraction.schema import Extraction
from decomposer.providers.base import ProviderConfig
from decomposer.providers.pricing import PriceTable
from decomposer.store import Store


def extraction_task(prompt: Prompt) -> Task[Extraction]:
    """The answer is validated against the chunks it was asked about (grounded quotes)."""
    return Task(name=EXTRACT, prompt=prompt, response_model=Extraction)


@dataclass
class ExtractionResult(CallResult[Extraction]):
    @property
    def extraction(self) -> Extraction:
        return self.value


@dataclass
class ExtractionCaller:
    """The generic caller bound to the extraction task and a run's prompt version."""

    cfg: ProviderConfig
    key: str = field(repr=False)
    prompt: Prompt
    store: Store
    http: httpx.AsyncClient
    prices: PriceTable
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep
    clock: Clock = utcnow
    refresh: bool = False
    caller: ModelCaller[Extraction] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.caller = ModelCaller(
            cfg=self.cfg,
            key=self.key,
            task=extraction_task(self.prompt),
            store=self.store,
            http=self.http,
            prices=self.prices,
            policy=self.policy,
            sleep=self.sleep,
            clock=self.clock,
            refresh=self.refresh,
        )

    @classmethod
    def around(cls, caller: ModelCaller[Extraction]) -> ExtractionCaller:
        return cls(
            cfg=caller.cfg,
            key=caller.key,
            prompt=caller.task.prompt,
            store=caller.store,
            http=caller.http,
            prices=caller.prices,
            policy=caller.policy,
            sleep=caller.sleep,
            clock=caller.clock,
            refresh=caller.refresh,
        )

    @property
    def task(self) -> Task[Extraction]:
        return self.caller.task

    def request_hash(self, context: Context) -> str:
        return self.caller.request_hash(context)

    async def extract(
        self, context: Context, *, run_id: int | None, chunk_id: str | None
    ) -> ExtractionResult:
        result = await self.caller.call(context, run_id=run_id, chunk_id=chunk_id)
        return ExtractionResult(**vars(result))


@asynccontextmanager
async def model_caller(
    settings: Settings,
    store: Store,
    setup: RunSetup,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[ExtractionCaller]:
    """An extraction caller for a run: its prompt version, limits and retry policy."""
    async with open_caller(
        settings, store, setup, extraction_task, prompt_name=EXTRACT, transport=transport
    ) as caller:
        yield ExtractionCaller.around(caller)
