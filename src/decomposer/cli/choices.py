"""The choices and defaults that option help texts show, as values the CLI can load cheaply.

Option help and defaults are evaluated when the command tree is built, for ``--help`` and
``decomposer tools`` too, so taking them from the modules that own them would import the SDKs,
SQLAlchemy, NumPy and SciPy on every start. Vocabularies come from ``core.vocab``; the rest are
plain copies that tests/test_startup.py checks against their owners, so they cannot drift.
"""

from __future__ import annotations

from decomposer.core.vocab import (
    CAPABILITIES_PER_SIDE,
    JOB_STATES,
    MATCHES_PER_QUERY,
    STATUSES,
    TOOL_TYPES,
)

__all__ = [
    "BATCH_WAIT_S",
    "CAPABILITIES_PER_SIDE",
    "COPY_MODES",
    "EMBEDDERS",
    "FORMATS",
    "JOB_STATES",
    "LEXICAL_ALIGN",
    "LEXICAL_MATCH",
    "MATCHES_PER_QUERY",
    "MAX_CONCURRENCY",
    "PROVIDERS",
    "RETRY_ATTEMPTS",
    "REVIEW_FIELDS",
    "STATUSES",
    "TOOL_TYPES",
]

PROVIDERS = ("mistral", "openai", "openai-compatible")
"""Owner: ``decomposer.providers.base.PROVIDERS``."""
RETRY_ATTEMPTS = 6
"""Owner: ``decomposer.calls.caller.RetryPolicy.attempts``."""
MAX_CONCURRENCY = 64
"""Owner: ``decomposer.extraction.concurrency.DEFAULT_MAX_CONCURRENCY``."""
BATCH_WAIT_S = 93_600.0
"""Owner: ``decomposer.extraction.batch.Backoff.deadline_s``."""
EMBEDDERS = ("lexical", "mistral", "openai", "openai-compatible")
"""Owner: ``decomposer.matching.embed.EMBEDDERS``."""
LEXICAL_ALIGN = 0.22
"""Owner: ``decomposer.matching.embed.LEXICAL_THRESHOLDS.align`` (``match similar``)."""
LEXICAL_MATCH = 0.20
"""Owner: ``decomposer.matching.embed.LEXICAL_THRESHOLDS.match`` (``match run``)."""
COPY_MODES = ("template", "llm")
"""Owner: ``decomposer.pages.llm_copy.COPY_MODES``."""
FORMATS = ("md", "html", "json")
"""Owner: ``decomposer.pages.render.FORMATS``."""
REVIEW_FIELDS = ("name", "category", "description", "unique", "vs_alternatives")
"""Owner: ``decomposer.review.actions.FIELDS``."""
