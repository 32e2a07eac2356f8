"""The typed result of scoring one extraction against a golden set (``model_dump()`` is the JSON).

Shares are ``None`` when their denominator is zero (no golden capabilities, no extracted quotes,
…), never NaN, so the JSON stays valid and a missing figure cannot pass for a perfect one.
All lists are sorted, and floats rounded to 4 places, so the same inputs give the same bytes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MatchRow(_Out):
    """A golden capability paired with an extracted one."""

    tool: str
    golden: str
    extracted: str
    similarity: float
    same_category: bool
    facts: int
    facts_covered: int
    must_quotes: int
    quotes_recovered: int
    documents: tuple[str, ...]


class MissedRow(_Out):
    """A golden capability no extracted one was paired with, and its closest candidate."""

    tool: str
    golden: str
    category: str
    documents: tuple[str, ...]
    nearest: str | None
    nearest_similarity: float


class UnmatchedRow(_Out):
    """An extracted capability paired with no golden one: a false positive, or a gap in the
    golden set. Listed so a person (or a judge model) can tell which."""

    tool: str
    extracted: str
    category: str
    description: str
    evidence_documents: tuple[str, ...]
    nearest: str | None
    nearest_similarity: float


class CapabilityScores(_Out):
    golden: int
    """Golden capabilities after merging one tool's same-named labels across its pages."""
    labels: int
    """Labelled (document, capability) entries in the set."""
    extracted: int
    matched: int
    recall: float | None
    precision: float | None
    f1: float | None
    same_category: float | None
    """Share of matched pairs whose categories agree."""
    facts: int
    facts_covered: int
    facts_share: float | None
    """Share of the matched golden capabilities' facts that the extracted name + description
    state (every word stem and number of the fact present)."""


class EvidenceScores(_Out):
    must_quotes: int
    recovered: int
    recovered_share: float | None
    """Must-quotes overlapped by a quote of the extracted capability matched to their golden
    capability, in the same document."""
    recovered_any: int
    recovered_any_share: float | None
    """Must-quotes overlapped by a quote of any extracted capability of the tool."""
    extracted_quotes: int
    grounded: int
    grounded_share: float | None


class NumberFlag(_Out):
    """A number in an extracted description that none of the capability's quotes contains."""

    tool: str
    capability: str
    number: str


class FieldScores(_Out):
    capabilities: int
    with_unique: int
    unique_share: float | None
    with_vs_alternatives: int
    vs_alternatives_share: float | None
    descriptions_with_numbers: int
    unsupported_numbers: tuple[NumberFlag, ...]


class ToolScores(_Out):
    tool: str
    golden: int
    extracted: int
    matched: int
    recall: float | None
    precision: float | None


class DocumentScores(_Out):
    """Recall per page: its labelled capabilities whose golden capability was matched."""

    tool: str
    source: str
    golden: int
    found: int
    recall: float | None
    must_quotes: int
    recovered: int


class CostShare(_Out):
    calls: float
    tokens: float
    cost_usd: float | None
    latency_s: float


class CostReport(_Out):
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_s: float
    documents: int
    correct: int
    """Matched capabilities: the denominator of the per-capability figures."""
    per_document: CostShare | None
    per_correct_capability: CostShare | None


class JudgeVerdict(_Out):
    """The judge model's verdict on one unmatched extracted capability (model-written)."""

    tool: str
    extracted: str
    supported: bool | None
    """None: not judged (no grounded evidence, or the answer failed its quote check)."""
    quote: str = ""
    reason: str


class JudgeSummary(_Out):
    model: str
    prompt_version: str
    judged: int
    supported: int
    precision: float | None
    """(matched + judged supported) / extracted: precision without assuming the golden set is
    complete."""
    calls: int
    tokens: int
    cost_usd: float | None
    verdicts: tuple[JudgeVerdict, ...]


class EvalReport(_Out):
    golden_set: str
    embedder: str
    threshold: float
    capabilities: CapabilityScores
    evidence: EvidenceScores
    fields: FieldScores
    cost: CostReport | None
    tools: tuple[ToolScores, ...]
    documents: tuple[DocumentScores, ...]
    matches: tuple[MatchRow, ...]
    missed: tuple[MissedRow, ...]
    unmatched: tuple[UnmatchedRow, ...]
    judge: JudgeSummary | None = None
    """Set only when the eval ran with ``--judge``."""
