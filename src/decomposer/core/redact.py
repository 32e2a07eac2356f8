"""Secrets scrubbed from every log record: the keys in use and anything shaped like a key.

A provider may echo the key it rejected ("Incorrect API key provided: sk-…") and SDKs log
requests at debug level, so with ``DECOMPOSER_DEBUG=1`` a key could reach a log. ``protect``
registers the values to hide and installs, once per process, a log-record factory that
redacts each record as it is made — its message with the arguments merged in, and its
exception and stack text. A factory rather than a filter on some handlers: every record
passes through it, whichever logger made it and whichever handler (ours, Celery's, uvicorn's,
pytest's) writes it, including handlers added later.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable
from typing import Any

MASK = "***"
MIN_SECRET = 6
"""Shorter values are not registered: hiding every "abc" would garble logs and hide nothing."""
PATTERNS = (
    (re.compile(r"\bsk-[A-Za-z0-9_\-*]{8,}"), MASK),  # OpenAI-style keys (sk-…, sk-proj-…)
    (re.compile(r"\bdcp_[A-Za-z0-9_\-]{16,}"), MASK),  # our own API tokens
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-*]{8,}"), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-*]{8,}"), rf"\g<1>{MASK}"),
)
"""Key-shaped text, masked whether or not its value was registered (after the registered
values, so a key that contains one is masked whole: ``*`` is part of each pattern)."""

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_installed = False


def protect(*values: str | None) -> None:
    """Hide these values (and key-shaped text) in every log record from now on."""
    global _secrets
    new = {v for v in values if v and len(v) >= MIN_SECRET}
    with _lock:
        if new - _secrets:
            _secrets = _secrets | new
        _install()


def redact(text: str) -> str:
    """``text`` with every registered secret and every key-shaped substring masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_record(record: logging.LogRecord) -> None:
    """Merge the arguments into the message and mask it, the exception and the stack text."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it when the record is emitted
        return
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """The same redaction as a filter, for a handler fed records made outside ``logging``'s
    factory (``logging.makeLogRecord``, e.g. records received over a socket)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def _install() -> None:
    global _installed
    if _installed:
        return
    inner: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
