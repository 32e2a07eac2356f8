"""The shared vocabularies (statuses, states, actions, categories, tool types, pricing models)
as ``StrEnum``s, and the numeric defaults more than one layer names.

Each word is defined here once. Members compare equal to, hash like and serialise as their
string values, so stored rows, JSON output and the model's wire schema are unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class CapabilityStatus(StrEnum):
    """Where a capability stands in review."""

    PROPOSED = "proposed"
    UNGROUNDED = "ungrounded"
    APPROVED = "approved"
    REJECTED = "rejected"
    VANISHED = "vanished"


STATUSES: tuple[CapabilityStatus, ...] = tuple(CapabilityStatus)
PENDING_STATUSES = (
    CapabilityStatus.PROPOSED,
    CapabilityStatus.UNGROUNDED,
    CapabilityStatus.VANISHED,
)
"""Statuses that wait for a reviewer."""
REVIEWED_STATUSES = (CapabilityStatus.APPROVED, CapabilityStatus.REJECTED)
"""Statuses a person decided; re-extraction proposes changes instead of overwriting them."""
LIVE_STATUSES = (CapabilityStatus.APPROVED, CapabilityStatus.PROPOSED, CapabilityStatus.UNGROUNDED)
"""Statuses that can be matched and shown as drafts: not rejected, not gone from the docs."""


class ReviewAction(StrEnum):
    """What a reviewer can do to a capability."""

    APPROVE = "approve"
    REJECT = "reject"
    EDIT = "edit"
    KEEP = "keep"


REVIEW_ACTIONS: tuple[ReviewAction, ...] = tuple(ReviewAction)


class ProposalKind(StrEnum):
    """Why a re-extraction opened a proposal on a reviewed capability."""

    CHANGED = "changed"
    VANISHED = "vanished"


class ProposalState(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DISMISSED = "dismissed"
    SUPERSEDED = "superseded"


class Provenance(StrEnum):
    """Where the text of a field came from: the tool's own docs, a checked model-written
    contrast across tools, a person's edit, or a template over the table's facts."""

    DOCS = "docs"
    CONTRAST = "contrast"
    EDITOR = "editor"
    TEMPLATE = "template"


PROVENANCES: tuple[Provenance, ...] = tuple(Provenance)


class ContrastStatus(StrEnum):
    """The life of one model-written "vs alternatives" line.

    ``proposed`` waits for a reviewer; ``dropped`` failed the checker after its re-asks (kept
    for measuring, never shown); ``superseded`` was replaced because its inputs changed."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    DROPPED = "dropped"
    SUPERSEDED = "superseded"


CONTRAST_STATUSES: tuple[ContrastStatus, ...] = tuple(ContrastStatus)


class JobState(StrEnum):
    """The life of one durable extraction job."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


JOB_STATES: tuple[JobState, ...] = tuple(JobState)


class RunStatus(StrEnum):
    """The life of an extraction run or a match run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


UNFINISHED_RUN_STATUSES = (RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.FAILED)
"""Run statuses ``extract --resume`` may pick up."""


class ToolType(StrEnum):
    API = "API"
    MODEL = "Model"
    LIBRARY = "Library"
    PLATFORM = "Platform"
    APP = "App"
    SERVICE = "Service"
    OTHER = "Other"


TOOL_TYPES: tuple[ToolType, ...] = tuple(ToolType)


class PricingModel(StrEnum):
    FREE = "free"
    FREEMIUM = "freemium"
    PAID = "paid"
    OPEN_WEIGHTS = "open-weights"
    UNKNOWN = "unknown"


PRICING_MODELS: tuple[PricingModel, ...] = tuple(PricingModel)


class Category(StrEnum):
    """The capability categories the extraction prompt and the review UI offer."""

    MODELS = "models"
    TEXT_GENERATION = "text-generation"
    STRUCTURED_OUTPUT = "structured-output"
    FUNCTION_CALLING = "function-calling"
    EMBEDDINGS = "embeddings"
    CODE = "code"
    VISION = "vision"
    MULTIMODAL = "multimodal"
    LONG_CONTEXT = "long-context"
    FINE_TUNING = "fine-tuning"
    BATCH = "batch"
    SAFETY = "safety"
    DEPLOYMENT = "deployment"
    PLATFORM = "platform"
    PRICING = "pricing"
    OTHER = "other"


CATEGORIES: tuple[Category, ...] = tuple(Category)


def enum_schema(vocab: type[StrEnum]) -> dict[str, Any]:
    """The JSON schema of a vocabulary written inline, exactly as pydantic writes a ``Literal``:
    the model's wire schema (and so every request hash and cache key) stays what it was."""
    return {"enum": [member.value for member in vocab], "type": "string"}


CAPABILITIES_PER_SIDE = 8
"""How many capabilities a comparison page shows for each tool by default."""
MATCHES_PER_QUERY = 10
"""How many capability edges ``match run`` keeps for each query by default."""

ROW_ID_MAX = 2**63 - 1
"""The largest integer id SQLite and PostgreSQL (bigint) store; a larger one names no row."""
