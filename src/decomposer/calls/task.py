"""Tasks: what one kind of billed model call asks for, so the caller itself stays generic.

A ``Task`` names a prompt, the pydantic model the answer must validate against and how the
call's input becomes the validation context (which is also the prompt's template context).
Extraction is one task; another feature adds its own task without touching ``calls.caller``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from decomposer.calls.prompts import Prompt

T = TypeVar("T", bound=BaseModel)
Context = dict[str, Any]


def _same(context: Context) -> Context:
    return context


@dataclass(frozen=True)
class Task(Generic[T]):
    """A prompt, the answer's model, and how the input becomes the validation context."""

    name: str
    prompt: Prompt
    response_model: type[T]
    validation_context: Callable[[Context], Context] = field(default=_same)

    @property
    def prompt_version(self) -> str:
        """How the call log names the prompt: ``name/version``."""
        return f"{self.prompt.name}/{self.prompt.version}"

    @property
    def schema_sha256(self) -> str:
        """A digest of the answer's JSON schema, part of every cache key."""
        schema = self.response_model.model_json_schema()
        return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()

    def validate(self, text: str, context: Context) -> T:
        """An answer's JSON, checked by the model's validators against the call's input."""
        return self.response_model.model_validate_json(
            text, context=self.validation_context(context)
        )

    def parse_cached(self, payload: str) -> T:
        """A cached answer: validated when it was stored, so read without the context."""
        return self.response_model.model_validate_json(payload)

    def parse_unchecked(self, text: str) -> T:
        """The structure alone, for an answer kept after the re-asks ran out (flagged)."""
        return self.response_model.model_validate_json(text)
