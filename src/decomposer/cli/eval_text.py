"""Text output of the eval commands: one run's summary and a comparison of two runs, as
terminal tables (``decomposer eval show`` / ``compare``; ``eval run`` prints the summary)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from decomposer.cli import common

if TYPE_CHECKING:
    from rich.console import Console

    from decomposer.evals.compare import Comparison
    from decomposer.evals.runs import EvalRun


def _verdict(supported: bool | None) -> str:
    return "not judged" if supported is None else "supported" if supported else "unsupported"


def share_text(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3f}"


def _count(part: int, whole: int) -> str:
    return f"({part}/{whole})"


def print_run(out: Console, run: EvalRun) -> None:
    from rich.table import Table

    s, r = run.settings, run.report
    caps, ev, fields, cost = r.capabilities, r.evidence, r.fields, r.cost
    out.print(
        f"eval run {run.id}: golden set {s.golden_name!r} ({s.golden_path}, {caps.golden} golden "
        f"capabilities from {caps.labels} labels)",
        markup=False,
    )
    out.print(
        f"  {s.provider} {s.model} ({s.mode}), prompt {s.prompt_version} ({s.prompt_hash[:12]}), "
        f"chunk budget {s.chunk_tokens}, pack {s.pack_tokens}, code {s.code_version}",
        markup=False,
    )
    if s.answers != "live":
        out.print(f"  NOTE: {s.note}", markup=False)
    table = Table("metric", "value", "detail", box=None, pad_edge=False)
    table.add_row("recall", share_text(caps.recall), _count(caps.matched, caps.golden))
    table.add_row("precision", share_text(caps.precision), _count(caps.matched, caps.extracted))
    table.add_row("f1", share_text(caps.f1), "")
    table.add_row("same category", share_text(caps.same_category), "of matched pairs")
    table.add_row(
        "facts covered", share_text(caps.facts_share), _count(caps.facts_covered, caps.facts)
    )
    table.add_row(
        "must-quotes recovered",
        share_text(ev.recovered_share),
        _count(ev.recovered, ev.must_quotes),
    )
    table.add_row(
        "  by any capability",
        share_text(ev.recovered_any_share),
        _count(ev.recovered_any, ev.must_quotes),
    )
    table.add_row(
        "quotes grounded", share_text(ev.grounded_share), _count(ev.grounded, ev.extracted_quotes)
    )
    table.add_row(
        "unique stated",
        share_text(fields.unique_share),
        _count(fields.with_unique, fields.capabilities),
    )
    table.add_row(
        "vs alternatives stated",
        share_text(fields.vs_alternatives_share),
        _count(fields.with_vs_alternatives, fields.capabilities),
    )
    table.add_row(
        "unsupported numbers",
        str(len(fields.unsupported_numbers)),
        "numbers in descriptions that no quote of the capability contains",
    )
    if cost is None:
        table.add_row("cost", "unknown", "")
    else:
        table.add_row(
            "cost",
            f"{cost.calls} calls",
            f"{cost.input_tokens:,} in / {cost.output_tokens:,} out "
            f"tokens, {common.usd(cost.cost_usd)}, {cost.latency_s:.2f} s of calls",
        )
        for label, share in (
            ("per document", cost.per_document),
            ("per correct capability", cost.per_correct_capability),
        ):
            if share is None:
                table.add_row(f"  {label}", "unknown", "none")
                continue
            table.add_row(
                f"  {label}",
                f"{share.calls:.2f} calls",
                f"{share.tokens:,.0f} tokens, {common.usd(share.cost_usd)}, "
                f"{share.latency_s:.3f} s",
            )
    out.print(table)
    tools = Table(
        "tool", "golden", "extracted", "matched", "recall", "precision", box=None, pad_edge=False
    )
    for t in r.tools:
        tools.add_row(
            t.tool,
            str(t.golden),
            str(t.extracted),
            str(t.matched),
            share_text(t.recall),
            share_text(t.precision),
        )
    out.print(tools)
    docs = Table(
        "document", "labels", "found", "recall", "must-quotes recovered", box=None, pad_edge=False
    )
    for d in r.documents:
        docs.add_row(
            f"{d.tool}/{d.source}",
            str(d.golden),
            str(d.found),
            share_text(d.recall),
            f"{d.recovered}/{d.must_quotes}",
        )
    out.print(docs)
    if r.missed:
        out.print(f"golden capabilities missed ({len(r.missed)}):", markup=False)
        for m in r.missed:
            near = (
                f"nearest: {m.nearest} ({m.nearest_similarity:.2f})"
                if m.nearest
                else "nothing near"
            )
            out.print(f"  {m.tool}: {m.golden} [{', '.join(m.documents)}] — {near}", markup=False)
    if r.unmatched:
        out.print(
            f"extracted capabilities matched to no golden one ({len(r.unmatched)}) — judge each: "
            "a false positive, or a gap in the golden set?",
            markup=False,
        )
        verdicts = {(v.tool, v.extracted): v for v in r.judge.verdicts} if r.judge else {}
        for u in r.unmatched:
            near = (
                f"nearest: {u.nearest} ({u.nearest_similarity:.2f})"
                if u.nearest
                else "nothing near"
            )
            where = ", ".join(u.evidence_documents) or "no grounded evidence"
            out.print(f"  {u.tool}: {u.extracted} [{where}] — {near}", markup=False)
            if (verdict := verdicts.get((u.tool, u.extracted))) is not None:
                out.print(
                    f"    judge: {_verdict(verdict.supported)} — {verdict.reason}", markup=False
                )
    if r.judge is not None:
        j = r.judge
        out.print(
            f"judge ({j.model}, prompt judge/{j.prompt_version}; verdicts are model-written): "
            f"{j.supported} of {j.judged} judged supported; precision counting them "
            f"{share_text(j.precision)}; {j.calls} calls, {j.tokens:,} tokens, "
            f"{common.usd(j.cost_usd)}",
            markup=False,
        )
    if s.answers != "live":
        out.print(f"NOTE: {s.note}", markup=False)


def print_comparison(out: Console, c: Comparison) -> None:
    from rich.table import Table

    out.print(
        f"eval run {c.a.id} (A) vs {c.b.id} (B): golden set {c.b.settings.golden_name!r}",
        markup=False,
    )
    if not c.same_golden:
        out.print("  NOTE: the runs scored different golden files: deltas mix sets", markup=False)
    for key, (va, vb) in c.settings_changed.items():
        out.print(f"  {key}: {va} -> {vb}", markup=False)
    for run in (c.a, c.b):
        if run.settings.answers != "live":
            out.print(f"  NOTE run {run.id}: {run.settings.note}", markup=False)
    table = Table("metric", "A", "B", "B − A", box=None, pad_edge=False)
    for m in c.metrics:
        table.add_row(m.metric, _fig(m.a), _fig(m.b), signed(m.delta))
    out.print(table)
    wins = [d for d in c.documents if d.outcome == "win"]
    losses = [d for d in c.documents if d.outcome == "loss"]
    out.print(
        f"per document: B found more on {len(wins)}, fewer on {len(losses)}, the same on "
        f"{len(c.documents) - len(wins) - len(losses)}",
        markup=False,
    )
    for d in [*wins, *losses]:
        out.print(
            f"  {d.outcome}: {d.tool}/{d.source} {d.found_a} -> {d.found_b} of {d.golden}",
            markup=False,
        )
    for label, rows in (
        (f"found only by A (run {c.a.id})", c.only_a),
        (f"found only by B (run {c.b.id})", c.only_b),
    ):
        out.print(f"{label}: {len(rows)}", markup=False)
        for row in rows:
            out.print(f"  {row.tool}: {row.golden} [{', '.join(row.documents)}]", markup=False)


def signed(delta: float | None) -> str:
    """A delta with its sign: whole numbers with thousands separators, others to 4 places."""
    if delta is None:
        return "unknown"
    return f"{delta:+,.0f}" if float(delta).is_integer() else f"{delta:+.4f}"


def _fig(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:,.0f}" if value.is_integer() and value >= 1 else f"{value:.4g}"
