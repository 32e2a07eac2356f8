"""Batch API results checked like inline answers: one result line against a task's model and
validation context, reduced to an outcome, a reason and the tokens it used."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic

from pydantic import ValidationError

from decomposer.calls.task import Context, T, Task


@dataclass
class Verdict(Generic[T]):
    value: T | None
    outcome: str
    """``ok``, ``error`` (the provider failed the item) or ``invalid`` (the answer was bad)."""
    reason: str | None
    input_tokens: int = 0
    output_tokens: int = 0


def judge(task: Task[T], item: dict[str, Any] | None, context: Context) -> Verdict[T] | None:
    """Check one result line like the inline path checks an answer; ``None`` if absent."""
    if item is None:
        return None
    response = item.get("response") if isinstance(item.get("response"), dict) else {}
    assert isinstance(response, dict)
    body = _body(response.get("body"))
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    tokens = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    if item.get("error"):
        return Verdict(None, "error", f"batch item error: {_describe(item['error'])}", *tokens)
    code = response.get("status_code")
    if code != 200:
        detail = _describe(body.get("error") or body.get("message") or body or "no body")
        return Verdict(None, "error", f"batch item HTTP {code}: {detail}", *tokens)
    choice = (body.get("choices") or [{}])[0]
    if not isinstance(choice, dict):
        return Verdict(None, "invalid", "batch answer has no choices", *tokens)
    if choice.get("finish_reason") == "length":
        return Verdict(None, "invalid", "batch answer was cut off at max_tokens", *tokens)
    try:
        value = task.validate(payload(choice.get("message")), context)
    except ValidationError as err:
        first = err.errors()[0]
        reason = f"invalid batch answer: {str(first.get('msg', err))[:300]}"
        return Verdict(None, "invalid", reason, *tokens)
    return Verdict(value, "ok", None, *tokens)


def _body(body: object) -> dict[str, Any]:
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            body = {}
    return body if isinstance(body, dict) else {}


def payload(message: object) -> str:
    """The structured payload of a chat message dict: tool-call arguments or content."""
    if not isinstance(message, dict):
        return ""
    calls = message.get("tool_calls") or []
    if calls and isinstance(calls[0], dict):
        args = (calls[0].get("function") or {}).get("arguments")
        return args if isinstance(args, str) else json.dumps(args)
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _describe(error: object) -> str:
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        message = error.get("message") or json.dumps(error)[:200]
        return f"{code}: {message}" if code else str(message)
    return str(error)[:300]
