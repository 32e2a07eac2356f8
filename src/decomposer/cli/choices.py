"""The choices and defaults that option help texts show, as plain values the CLI can load cheaply.

Option help and defaults are evaluated when the command tree is built, for ``--help`` and
``decomposer tools`` too, so taking them from the modules that own them would import the SDKs,
SQLAlchemy, NumPy and SciPy on every start. tests/test_startup.py checks each value against its
owner, so a change there fails the suite instead of drifting.
"""

from __future__ import annotations

TOOL_TYPES = ("API", "Model", "Library", "Platform", "App", "Service", "Other")
"""Owner: ``decomposer.store.tools.TOOL_TYPES``."""
STATUSES = ("proposed", "ungrounded", "approved", "rejected", "vanished")
"""Owner: ``decomposer.views.capabilities.STATUSES``."""
JOB_STATES = ("queued", "running", "done", "failed")
"""Owner: ``decomposer.extraction.jobs.STATES``."""
PROVIDERS = ("mistral", "openai", "openai-compatible")
"""Owner: ``decomposer.providers.base.PROVIDERS``."""
RETRY_ATTEMPTS = 6
"""Owner: ``decomposer.calls.caller.RetryPolicy.attempts``."""
BATCH_WAIT_S = 93_600.0
"""Owner: ``decomposer.extraction.batch.Backoff.deadline_s``."""
EMBEDDERS = ("lexical", "mistral", "openai", "openai-compatible")
"""Owner: ``decomposer.matching.embed.EMBEDDERS``."""
MATCHES_PER_QUERY = 10
"""Owner: ``decomposer.matching.match.DEFAULT_TOP_K``."""
CAPABILITIES_PER_SIDE = 8
"""Owner: ``decomposer.pages.compare.DEFAULT_TOP_K``."""
FORMATS = ("md", "html", "json")
"""Owner: ``decomposer.pages.render.FORMATS``."""
REVIEW_FIELDS = ("name", "category", "description", "unique", "vs_alternatives")
"""Owner: ``decomposer.review.actions.FIELDS``."""
