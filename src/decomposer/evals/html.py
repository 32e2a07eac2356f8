"""Standalone HTML reports of eval runs: tables and bar charts drawn as inline SVG, with its own
CSS and no script, font or stylesheet from anywhere else, so the file opens offline and can be
attached to a pull request. Every text is escaped; an unknown figure is drawn as "unknown",
never as an empty bar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from decomposer.evals.compare import Comparison, headline
from decomposer.evals.runs import EvalRun

COLOURS = ("#1f77b4", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666")
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;
color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;
text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fff4d6;border:1px solid #e0c060;padding:.5rem .75rem}
.win{color:#1b7e3c}.loss{color:#b00020}svg text{font:12px system-ui,sans-serif}
"""


def _label(run: EvalRun) -> str:
    s = run.settings
    return f"#{run.id} {s.model} {s.mode} prompt {s.prompt_version}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


def bar_chart(
    title: str,
    groups: Sequence[str],
    series: Sequence[str],
    values: Sequence[Sequence[float | None]],
    fmt: Callable[[float | None], str] = _fmt,
) -> str:
    """Horizontal grouped bars: one group per row label, one bar per series (``values[g][s]``),
    scaled to the largest value; ``None`` is written as "unknown" without a bar."""
    bar_h, gap, width = 14, 10, 420
    left = min(480, max(80, 7 * max((len(g) for g in groups), default=0) + 16))
    known = [v for row in values for v in row if v is not None]
    top = max(known, default=0.0) or 1.0
    row_h = bar_h * len(series) + gap
    legend_h = 18 * len(series) + 6
    height = legend_h + row_h * len(groups) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{left + width + 120}" '
        f'height="{height}" viewBox="0 0 {left + width + 120} {height}">',
        f"<title>{escape(title)}</title>",
    ]
    for s, name in enumerate(series):
        y = 4 + 18 * s
        colour = COLOURS[s % len(COLOURS)]
        parts.append(f'<rect x="0" y="{y}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="18" y="{y + 11}">{escape(name)}</text>')
    for g, group in enumerate(groups):
        y0 = legend_h + g * row_h
        parts.append(
            f'<text x="{left - 6}" y="{y0 + row_h / 2}" text-anchor="end">{escape(group)}</text>'
        )
        for s in range(len(series)):
            value = values[g][s]
            y = y0 + s * bar_h
            if value is None:
                parts.append(f'<text x="{left + 4}" y="{y + bar_h - 3}">unknown</text>')
                continue
            w = max(0.0, value) / top * width
            colour = COLOURS[s % len(COLOURS)]
            parts.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{colour}">'
                f"<title>{escape(series[s])}: {escape(fmt(value))}</title></rect>"
            )
            parts.append(
                f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 3}">{escape(fmt(value))}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _page(title: str, body: Sequence[str]) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{''.join(body)}</body></html>\n"
    )


def _settings_table(runs: Sequence[EvalRun]) -> str:
    fields = (
        "golden_name",
        "provider",
        "model",
        "mode",
        "prompt_version",
        "prompt_hash",
        "chunk_tokens",
        "pack_tokens",
        "answers",
        "code_version",
        "golden_sha256",
    )
    head = "".join(f"<th>#{r.id}</th>" for r in runs)
    created = "".join(f"<td>{r.created_at:%Y-%m-%d %H:%M}</td>" for r in runs)
    rows = [f"<tr><th>created</th>{created}</tr>"]
    for field in fields:
        cells = "".join(f"<td>{escape(_setting(r, field))}</td>" for r in runs)
        rows.append(f"<tr><th>{escape(field.replace('_', ' '))}</th>{cells}</tr>")
    notes = "".join(
        f'<p class="note">#{r.id}: {escape(r.settings.note)}</p>'
        for r in runs
        if r.settings.answers != "live"
    )
    return f"<h2>Runs</h2>{notes}<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _setting(run: EvalRun, field: str) -> str:
    value = str(getattr(run.settings, field))
    return value[:16] if field.endswith(("hash", "sha256")) else value


def _headline_table(runs: Sequence[EvalRun]) -> str:
    head = "".join(f"<th>#{r.id}</th>" for r in runs)
    figures = [headline(r.report) for r in runs]
    rows = []
    for i, (name, _, _) in enumerate(figures[0]):
        cells = "".join(f'<td class="n">{escape(_fmt(f[i][1]))}</td>' for f in figures)
        rows.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
    return f"<h2>Figures</h2><table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _charts(runs: Sequence[EvalRun]) -> str:
    labels = [_label(r) for r in runs]
    quality = bar_chart(
        "Recall and precision per run",
        labels,
        ["recall", "precision"],
        [[r.report.capabilities.recall, r.report.capabilities.precision] for r in runs],
    )
    cost = bar_chart(
        "Cost per run",
        labels,
        ["$ total", "$ per correct capability"],
        [
            [
                r.report.cost.cost_usd if r.report.cost else None,
                r.report.cost.per_correct_capability.cost_usd
                if r.report.cost and r.report.cost.per_correct_capability
                else None,
            ]
            for r in runs
        ],
        fmt=lambda v: "unknown" if v is None else f"${v:.4f}",
    )
    tokens = bar_chart(
        "Tokens per run",
        labels,
        ["tokens"],
        [
            [
                float(r.report.cost.input_tokens + r.report.cost.output_tokens)
                if r.report.cost
                else None
            ]
            for r in runs
        ],
    )
    docs = sorted({(d.tool, d.source) for r in runs for d in r.report.documents})
    per_doc = {(r.id, d.tool, d.source): d.recall for r in runs for d in r.report.documents}
    documents = bar_chart(
        "Recall per document",
        [f"{tool}/{source}" for tool, source in docs],
        [f"#{r.id}" for r in runs],
        [[per_doc.get((r.id, tool, source)) for r in runs] for tool, source in docs],
    )
    return (
        f"<h2>Recall and precision per run</h2>{quality}<h2>Cost per run</h2>{cost}{tokens}"
        f"<h2>Recall per document</h2>{documents}"
    )


def _details(run: EvalRun) -> str:
    report = run.report
    missed = "".join(
        f"<tr><td>{escape(m.tool)}</td><td>{escape(m.golden)}</td>"
        f"<td>{escape(', '.join(m.documents))}</td><td>{escape(m.nearest or '—')}</td>"
        f'<td class="n">{m.nearest_similarity:.2f}</td></tr>'
        for m in report.missed
    )
    verdicts = {(v.tool, v.extracted): v for v in report.judge.verdicts} if report.judge else {}

    def judged(tool: str, name: str) -> str:
        v = verdicts.get((tool, name))
        if v is None:
            return "—"
        label = (
            "not judged" if v.supported is None else "supported" if v.supported else "unsupported"
        )
        return f"{label}: {v.reason}"

    unmatched = "".join(
        f"<tr><td>{escape(u.tool)}</td><td>{escape(u.extracted)}</td>"
        f"<td>{escape(u.description)}</td><td>{escape(', '.join(u.evidence_documents))}</td>"
        f'<td>{escape(u.nearest or "—")}</td><td class="n">{u.nearest_similarity:.2f}</td>'
        f"<td>{escape(judged(u.tool, u.extracted))}</td></tr>"
        for u in report.unmatched
    )
    return (
        f"<h2>Golden capabilities missed ({len(report.missed)})</h2><table><tr><th>tool</th>"
        f"<th>golden</th><th>documents</th><th>nearest extracted</th><th>sim</th></tr>{missed}"
        f"</table><h2>Extracted capabilities matched to no golden one "
        f"({len(report.unmatched)}) — judge each: false positive or a gap in the set?</h2>"
        f"<table><tr><th>tool</th><th>extracted</th><th>description (model-written)</th>"
        f"<th>evidence in</th><th>nearest golden</th><th>sim</th>"
        f"<th>judge (model-written)</th></tr>{unmatched}</table>"
    )


def render_runs(runs: Sequence[EvalRun]) -> str:
    """A report of one or more runs: settings, figures, charts; with one run, its misses too."""
    title = (
        f"Eval run #{runs[0].id}: {runs[0].settings.golden_name}"
        if len(runs) == 1
        else f"Eval runs {', '.join(f'#{r.id}' for r in runs)}"
    )
    body = [_settings_table(runs), _headline_table(runs), _charts(runs)]
    if len(runs) == 1:
        body.append(_details(runs[0]))
    return _page(title, body)


def render_comparison(c: Comparison) -> str:
    """Two runs side by side: deltas, per-document wins and losses, what only one found."""
    body = [_settings_table([c.a, c.b])]
    if not c.same_golden:
        body.append('<p class="note">The runs scored different golden files: deltas mix sets.</p>')
    rows = "".join(
        f'<tr><th>{escape(m.metric)}</th><td class="n">{escape(_fmt(m.a))}</td>'
        f'<td class="n">{escape(_fmt(m.b))}</td>'
        f'<td class="n {_direction(m.delta, m.higher_is_better)}">{escape(_signed(m.delta))}</td>'
        "</tr>"
        for m in c.metrics
    )
    body.append(
        f"<h2>Deltas (B − A)</h2><table><tr><th>metric</th><th>A #{c.a.id}</th>"
        f"<th>B #{c.b.id}</th><th>delta</th></tr>{rows}</table>"
    )
    body.append(_charts([c.a, c.b]))
    docs = "".join(
        f'<tr><td>{escape(d.tool)}/{escape(d.source)}</td><td class="n">{d.golden}</td>'
        f'<td class="n">{d.found_a}</td><td class="n">{d.found_b}</td>'
        f'<td class="{d.outcome}">{d.outcome}</td></tr>'
        for d in c.documents
    )
    body.append(
        "<h2>Per document (golden capabilities found)</h2><table><tr><th>document</th>"
        f"<th>golden</th><th>A</th><th>B</th><th>B vs A</th></tr>{docs}</table>"
    )
    for title, rows_ in (
        (f"Found only by A #{c.a.id}", c.only_a),
        (f"Found only by B #{c.b.id}", c.only_b),
    ):
        items = "".join(
            f"<li>{escape(d.tool)}: {escape(d.golden)} ({escape(', '.join(d.documents))})</li>"
            for d in rows_
        )
        body.append(f"<h2>{escape(title)} ({len(rows_)})</h2><ul>{items}</ul>")
    return _page(f"Eval runs #{c.a.id} vs #{c.b.id}", body)


def _signed(delta: float | None) -> str:
    if delta is None:
        return "unknown"
    return f"{delta:+,.0f}" if float(delta).is_integer() else f"{delta:+.4f}"


def _direction(delta: float | None, higher_is_better: bool) -> str:
    if not delta:
        return ""
    return "win" if (delta > 0) == higher_is_better else "loss"
