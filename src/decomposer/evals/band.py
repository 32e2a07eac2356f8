"""Recorded bands: the figures of an eval run that must stay within [min, max], so that a change
which silently drops capabilities or evidence fails a check (the demo set in CI, or your own
set with ``decomposer eval GOLDEN --band FILE``).

A band file is TOML, one table per figure::

    [band.recall]
    min = 0.88
    max = 0.94

Latency and $ are not banded: the first varies by machine, the second with the price list.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from decomposer.core.errors import InputError
from decomposer.evals.report import EvalReport

SHARE_TOLERANCE = 0.03
"""How far a share (0–1) may move from the recorded value before the band is left."""
COUNT_TOLERANCE = 0.1
"""How far a count may move, as a fraction of the recorded value (at least 1)."""
FIGURES = (
    "recall",
    "precision",
    "matched",
    "extracted",
    "facts_share",
    "recovered_share",
    "grounded_share",
    "unique_share",
    "vs_alternatives_share",
    "unsupported_numbers",
    "calls",
    "tokens",
)
_SHARES = {
    "recall",
    "precision",
    "facts_share",
    "recovered_share",
    "grounded_share",
    "unique_share",
    "vs_alternatives_share",
}


def figures(report: EvalReport) -> dict[str, float | None]:
    """The banded figures of a report; ``None`` where a figure is unknown."""
    caps, evidence, fields, cost = report.capabilities, report.evidence, report.fields, report.cost
    return {
        "recall": caps.recall,
        "precision": caps.precision,
        "matched": caps.matched,
        "extracted": caps.extracted,
        "facts_share": caps.facts_share,
        "recovered_share": evidence.recovered_share,
        "grounded_share": evidence.grounded_share,
        "unique_share": fields.unique_share,
        "vs_alternatives_share": fields.vs_alternatives_share,
        "unsupported_numbers": len(fields.unsupported_numbers),
        "calls": cost.calls if cost else None,
        "tokens": cost.input_tokens + cost.output_tokens if cost else None,
    }


def load_band(path: Path) -> dict[str, tuple[float, float]]:
    """A band file as ``{figure: (min, max)}``, or a one-line error naming the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read band ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from exc
    band: dict[str, tuple[float, float]] = {}
    known = set(FIGURES)
    for name, limits in dict(data.get("band", {})).items():
        if name not in known:
            raise InputError(
                f"{path}: band.{name}: unknown figure (one of: {', '.join(sorted(known))})"
            )
        try:
            low, high = float(limits["min"]), float(limits["max"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: band.{name}: needs numbers min and max") from exc
        band[name] = (low, high)
    if not band:
        raise InputError(f"{path}: no [band.<figure>] tables")
    return band


def outside(report: EvalReport, band: dict[str, tuple[float, float]]) -> list[str]:
    """One line per figure outside its band (an unknown figure is outside)."""
    values = figures(report)
    problems = []
    for name, (low, high) in sorted(band.items()):
        value = values[name]
        if value is None or not low <= value <= high:
            problems.append(
                f"{name} = {'unknown' if value is None else value} is outside [{low}, {high}]"
            )
    return problems


def record_band(report: EvalReport, comment: str) -> str:
    """A band file around this report's figures (shares ± ``SHARE_TOLERANCE``, counts ±
    ``COUNT_TOLERANCE``), with ``comment`` saying how it was made."""
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    for name, value in figures(report).items():
        if value is None:
            continue
        if name in _SHARES:
            low, high = max(0.0, value - SHARE_TOLERANCE), min(1.0, value + SHARE_TOLERANCE)
            lines += ["", f"[band.{name}]", f"min = {low:.4f}", f"max = {high:.4f}"]
        else:
            slack = max(1, round(value * COUNT_TOLERANCE))
            lines += [
                "",
                f"[band.{name}]",
                f"min = {max(0, int(value) - slack)}",
                f"max = {int(value) + slack}",
            ]
    return "\n".join(lines) + "\n"
