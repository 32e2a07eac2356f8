"""Scores: five 0–100 sub-scores and a weighted Rank, each explainable from stored inputs.

    Adoption     mean of the declared adoption signals (GitHub stars, monthly downloads,
                 Hugging Face likes), each log-normalised against the catalogue's largest value:
                 100 × ln(1 + v) / ln(1 + max). Signals a tool does not declare are left out of
                 its mean; a tool declaring none is *unknown* (None), never 0.
    Quality      100 × mean of four shares from our own records, over non-rejected capabilities:
                 approved share, evidence coverage (capabilities with ≥ 1 grounded quote),
                 grounding rate (grounded quotes / all quotes) and profile completeness (known
                 fields of type, pricing model, starting price, free tier).
    Ecosystem    integrations count, log-normalised against the catalogue; unknown when not
                 declared.
    Match Graph  Times Matched (match.py: searches whose top-k hits include one of the tool's
                 capabilities above the run's threshold), log-normalised against the catalogue's
                 largest value; 0 for everyone until `decomposer match run` has matched a query.
    Freshness    mean of the available dates' scores, each 100 × max(0, 1 − age / 12) with the
                 age in whole calendar months: the last release (catalogue) and the newest
                 document update (store). Months, not days, so pages do not churn every day.
                 Unknown when the tool has neither.
    Rank         Σ weightᵢ × sub-scoreᵢ / Σ weightᵢ over the *displayed* (integer) sub-scores that
                 are known, so a reader can recompute it from the table; ``coverage`` is the share
                 of the total weight those known sub-scores carry. Unknown when none is known.
                 Default weights: Adoption 25, Quality 25, Ecosystem 10, Match Graph 25,
                 Freshness 15.

Unknown is not zero: a sub-score whose inputs are missing has ``value`` None and a ``how`` that
starts with ``NOT_ENOUGH_DATA``, so pages show "—" and copy never claims a lead or tie on it.

Rounding is half-up to integers. Everything here is pure: inputs in, numbers and reasons out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from decomposer.core.errors import InputError

SUBSCORES = ("adoption", "quality", "ecosystem", "match_graph", "freshness")
LABELS = {
    "adoption": "Adoption",
    "quality": "Quality",
    "ecosystem": "Ecosystem",
    "match_graph": "Match Graph",
    "freshness": "Freshness",
}
ADOPTION_SIGNALS = ("github_stars", "monthly_downloads", "hf_likes")
SIGNAL_LABELS = {
    "github_stars": "GitHub stars",
    "monthly_downloads": "monthly downloads",
    "hf_likes": "Hugging Face likes",
    "integrations": "integrations",
    "times_matched": "Times Matched",
}
FRESHNESS_HORIZON_MONTHS = 12
NOT_ENOUGH_DATA = "not enough data"


@dataclass(frozen=True)
class Weights:
    adoption: float = 25
    quality: float = 25
    ecosystem: float = 10
    match_graph: float = 25
    freshness: float = 15

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in SUBSCORES}

    @property
    def total(self) -> float:
        return sum(self.as_dict().values())

    def percent(self, name: str) -> float:
        return 100.0 * float(getattr(self, name)) / self.total


def parse_weights(text: str | None) -> Weights:
    """``"adoption=30,quality=20"``: named weights override the defaults (any scale, ≥ 0)."""
    if not text:
        return Weights()
    values: dict[str, float] = {}
    aliases = {n.replace("_", "-"): n for n in SUBSCORES} | {n: n for n in SUBSCORES}
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        key = aliases.get(name.strip().lower().replace(" ", "-"))
        if not sep or key is None:
            raise InputError(
                f"invalid weight {part.strip()!r}",
                hint=f"use NAME=NUMBER with NAME one of {', '.join(SUBSCORES)}",
            )
        try:
            number = float(raw)
        except ValueError:
            raise InputError(f"weight {key} is not a number: {raw.strip()!r}") from None
        if not math.isfinite(number) or number < 0:
            raise InputError(f"weight {key} must be a finite number ≥ 0, got {raw.strip()}")
        values[key] = number
    weights = Weights(**values)
    if weights.total <= 0:
        raise InputError("the weights add up to 0", hint="give at least one sub-score a weight")
    return weights


@dataclass(frozen=True)
class QualityInputs:
    approved: int = 0
    live: int = 0  # non-rejected capabilities
    with_grounded_evidence: int = 0
    quotes: int = 0
    grounded_quotes: int = 0
    profile_known: int = 0
    profile_fields: int = 4


@dataclass(frozen=True)
class ToolInputs:
    """Everything a tool's scores are computed from."""

    slug: str
    signals: Mapping[str, Any] = field(default_factory=dict)
    quality: QualityInputs = field(default_factory=QualityInputs)
    last_release: date | None = None
    docs_updated: date | None = None
    times_matched: int = 0


@dataclass(frozen=True)
class Part:
    """One input and how it became a number."""

    label: str
    value: str
    computation: str
    score: float


@dataclass(frozen=True)
class SubScore:
    """One sub-score; ``value``/``exact`` are None when its inputs are missing (see ``how``)."""

    name: str
    value: int | None
    exact: float | None
    how: str
    parts: tuple[Part, ...] = ()

    @property
    def known(self) -> bool:
        return self.value is not None


def unknown(name: str, reason: str) -> SubScore:
    """A sub-score that cannot be computed: shown as "—", left out of Rank."""
    return SubScore(name, None, None, f"{NOT_ENOUGH_DATA}: {reason}")


@dataclass(frozen=True)
class ScoreCard:
    slug: str
    subscores: dict[str, SubScore]
    rank: int | None
    rank_exact: float | None
    rank_how: str
    coverage: int = 100
    """Percent of the total weight carried by the known sub-scores that Rank is computed from."""

    def value(self, name: str) -> int | None:
        return self.rank if name == "rank" else self.subscores[name].value

    def as_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "rank_how": self.rank_how,
            "coverage": self.coverage,
            **{
                name: {
                    "value": s.value,
                    "exact": None if s.exact is None else round(s.exact, 4),
                    "how": s.how,
                    "parts": [
                        {
                            "label": p.label,
                            "value": p.value,
                            "computation": p.computation,
                            "score": round(p.score, 4),
                        }
                        for p in s.parts
                    ],
                }
                for name, s in self.subscores.items()
            },
        }


@dataclass(frozen=True)
class Context:
    """Catalogue-wide maxima that log-normalisation divides by."""

    maxima: Mapping[str, int]

    @classmethod
    def of(cls, tools: Mapping[str, ToolInputs] | list[ToolInputs]) -> Context:
        items = list(tools.values()) if isinstance(tools, Mapping) else tools
        maxima: dict[str, int] = {}
        for name in (*ADOPTION_SIGNALS, "integrations"):
            maxima[name] = max((_count(t.signals.get(name)) or 0 for t in items), default=0)
        maxima["times_matched"] = max((t.times_matched for t in items), default=0)
        return cls(maxima)


def half_up(x: float) -> int:
    return math.floor(x + 0.5 + 1e-9)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _lognorm(name: str, value: int, ctx: Context) -> Part:
    top = ctx.maxima.get(name, 0)
    label = SIGNAL_LABELS[name]
    if top <= 0:
        return Part(label, f"{value:,}", f"catalogue maximum is {top:,}, so 0", 0.0)
    score = 100.0 * math.log1p(value) / math.log1p(top)
    return Part(
        label, f"{value:,}", f"100 × ln(1 + {value:,}) / ln(1 + {top:,}) = {score:.1f}", score
    )


def _mean_sub(name: str, parts: list[Part], none_reason: str) -> SubScore:
    if not parts:
        return unknown(name, none_reason)
    exact = sum(p.score for p in parts) / len(parts)
    how = (
        (
            f"mean of {len(parts)}: ("
            + " + ".join(f"{p.score:.1f}" for p in parts)
            + f") / {len(parts)} = {exact:.1f}"
        )
        if len(parts) > 1
        else f"{exact:.1f}"
    )
    return SubScore(name, half_up(exact), exact, how, tuple(parts))


def adoption(t: ToolInputs, ctx: Context) -> SubScore:
    parts = [
        _lognorm(n, c, ctx) for n in ADOPTION_SIGNALS if (c := _count(t.signals.get(n))) is not None
    ]
    return _mean_sub("adoption", parts, "no adoption signal declared in the catalogue")


def ecosystem(t: ToolInputs, ctx: Context) -> SubScore:
    count = _count(t.signals.get("integrations"))
    if count is None:
        return unknown("ecosystem", "no integrations count declared in the catalogue")
    part = _lognorm("integrations", count, ctx)
    return SubScore("ecosystem", half_up(part.score), part.score, part.computation, (part,))


def match_graph(t: ToolInputs, ctx: Context) -> SubScore:
    if ctx.maxima.get("times_matched", 0) <= 0:
        return SubScore(
            "match_graph",
            0,
            0.0,
            "no tool has been matched yet (the match graph is not built: run `decomposer "
            "match import-queries FILE` and `decomposer match run`), so 0",
            (Part("Times Matched", f"{t.times_matched:,}", "0 for every tool", 0.0),),
        )
    part = _lognorm("times_matched", t.times_matched, ctx)
    return SubScore("match_graph", half_up(part.score), part.score, part.computation, (part,))


def _share(label: str, num: int, den: int) -> Part:
    if den <= 0:
        return Part(label, "0 / 0", "nothing to measure, so 0", 0.0)
    share = 100.0 * num / den
    return Part(label, f"{num} / {den}", f"100 × {num} / {den} = {share:.1f}", share)


def quality(t: ToolInputs) -> SubScore:
    q = t.quality
    parts = [
        _share("approved capabilities", q.approved, q.live),
        _share("capabilities with grounded evidence", q.with_grounded_evidence, q.live),
        _share("grounded evidence quotes", q.grounded_quotes, q.quotes),
        _share("profile fields known", q.profile_known, q.profile_fields),
    ]
    return _mean_sub("quality", parts, "no records")


def months_between(earlier: date, later: date) -> int:
    """Whole calendar months from ``earlier`` to ``later`` (0 in the same month; never < 0)."""
    return max(0, (later.year - earlier.year) * 12 + later.month - earlier.month)


def _age_part(label: str, when: date, as_of: date) -> Part:
    age = months_between(when, as_of)
    horizon = FRESHNESS_HORIZON_MONTHS
    score = 100.0 * max(0.0, 1.0 - age / horizon)
    return Part(
        label,
        when.isoformat(),
        f"{age} months old: 100 × max(0, 1 − {age} / {horizon}) = {score:.1f}",
        score,
    )


def freshness(t: ToolInputs, as_of: date) -> SubScore:
    parts = []
    if t.last_release is not None:
        parts.append(_age_part("last release", t.last_release, as_of))
    if t.docs_updated is not None:
        parts.append(_age_part("newest document update", t.docs_updated, as_of))
    return _mean_sub("freshness", parts, "no release date in the catalogue and no document")


def score_tool(t: ToolInputs, ctx: Context, weights: Weights, as_of: date) -> ScoreCard:
    subs = {
        "adoption": adoption(t, ctx),
        "quality": quality(t),
        "ecosystem": ecosystem(t, ctx),
        "match_graph": match_graph(t, ctx),
        "freshness": freshness(t, as_of),
    }
    return ScoreCard(t.slug, subs, *rank_of(subs, weights))


def rank_of(
    subs: Mapping[str, SubScore], weights: Weights
) -> tuple[int | None, float | None, str, int]:
    """Rank from the known sub-scores only, renormalised by their weight; plus its coverage %."""
    w = weights.as_dict()
    known = {n: v for n in SUBSCORES if (v := subs[n].value) is not None}
    missing = [LABELS[n] for n in SUBSCORES if n not in known]
    total = sum(w[n] for n in known)
    coverage = half_up(100.0 * total / weights.total)
    if total <= 0:
        return None, None, f"{NOT_ENOUGH_DATA}: no weighted sub-score is known", coverage
    exact = sum(w[n] * known[n] for n in known) / total
    terms = " + ".join(f"{_num(w[n])} × {known[n]}" for n in known)
    how = f"({terms}) / {_num(total)} = {exact:.2f}"
    if missing:
        how += f"; {', '.join(missing)} unknown, so Rank covers {coverage}% of the weight"
    return half_up(exact), exact, how, coverage


def score_all(
    tools: Mapping[str, ToolInputs], weights: Weights, as_of: date
) -> dict[str, ScoreCard]:
    ctx = Context.of(tools)
    return {slug: score_tool(t, ctx, weights, as_of) for slug, t in tools.items()}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def explain(card: ScoreCard, weights: Weights) -> list[str]:
    """Human-readable lines: every input, every formula, every result."""
    lines = [
        f"Rank {out_of(card.rank)} = {card.rank_how} (weights: "
        + ", ".join(f"{LABELS[n]} {_num(weights.as_dict()[n])}" for n in SUBSCORES)
        + ")"
    ]
    for name in SUBSCORES:
        sub = card.subscores[name]
        if sub.value is None:
            lines.append(f"{LABELS[name]} — {sub.how}")
        else:
            lines.append(f"{LABELS[name]} {sub.value}/100" + (f" = {sub.how}" if sub.how else ""))
        for part in sub.parts:
            lines.append(f"  {part.label}: {part.value} → {part.computation}")
    return lines


def out_of(value: int | None) -> str:
    """``73/100``, or ``—`` for an unknown score."""
    return "—" if value is None else f"{value}/100"
