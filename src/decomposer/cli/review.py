"""CLI commands for reviewing: ``review`` (interactive), ``approve``, ``reject``, ``edit``,
``history`` and ``serve`` (the web UI). Thin shells over ``decomposer.review.actions`` and
``decomposer.web``.

``decomposer.cli.app`` calls ``register(app)`` at its end; helpers from ``decomposer.cli.app`` are
imported inside the commands so that either module can be imported first.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError, ConflictError, InputError
from decomposer.review.actions import FIELDS, Outcome, bulk, review_many, submit
from decomposer.review.queries import (
    Filter,
    evidence_context,
    get_capability,
    history,
    open_proposal,
    parse_where,
    select_capabilities,
)
from decomposer.store import Store

ReviewerOpt = Annotated[
    str | None,
    typer.Option(
        "--reviewer", help="Your name for the audit trail (default: $DECOMPOSER_REVIEWER)."
    ),
]
IdsArg = Annotated[list[str] | None, typer.Argument(help="Capability ids.", show_default=False)]
ToolOpt = Annotated[
    str | None, typer.Option("--tool", help="Bulk: act on this tool's capabilities.")
]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="Bulk filter, repeatable: status=proposed, category=platform, category!=pricing, "
        "name~TEXT, grounded=true, proposal=true, run=N. Default: pending ones only.",
    ),
]
NoteOpt = Annotated[str | None, typer.Option("--note", help="Why; kept in the history.")]
ExpectOpt = Annotated[
    int | None,
    typer.Option(
        "--expect-version",
        help="Fail with a conflict unless the capability is still at this version.",
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="List what would change; change nothing.")
]


def register(app: typer.Typer) -> None:
    app.command("review")(review_cmd)
    app.command("approve")(approve_cmd)
    app.command("reject")(reject_cmd)
    app.command("edit")(edit_cmd)
    app.command("history")(history_cmd)
    app.command("serve")(serve_cmd)


def reviewer_name(option: str | None, settings: Settings) -> str:
    """``--reviewer``, else ``$DECOMPOSER_REVIEWER`` or config.toml's ``[review] reviewer``;
    refuse rather than guess."""
    name = (option or "").strip() or settings.reviewer
    if not name:
        raise ConfigError(
            "no reviewer name for the audit trail",
            hint="pass --reviewer NAME, set DECOMPOSER_REVIEWER, or add [review] reviewer "
            "to config.toml",
        )
    return name


def _now() -> Any:
    from decomposer.core.clock import utcnow

    return utcnow()


def _print_outcomes(outcomes: list[Outcome], verb: str) -> None:
    from decomposer.cli.app import _out

    out = _out()
    for o in outcomes:
        extra = (
            f" ({', '.join(k for k in o.changes if k != 'status')} edited)"
            if any(k != "status" for k in o.changes)
            else ""
        )
        out.print(f"{verb} {o.capability_id}: {o.status}, version {o.version}{extra}", markup=False)
    if not outcomes:
        out.print("nothing matched; nothing changed", markup=False)


def _act(
    ctx: typer.Context,
    action: str,
    ids: list[str] | None,
    tool: str | None,
    where: list[str] | None,
    note: str | None,
    expect_version: int | None,
    dry_run: bool,
    reviewer: str | None,
    verb: str,
) -> None:
    from decomposer.cli.app import _env

    if ids and (tool or where):
        raise InputError("give capability ids or --tool/--where, not both")
    if not ids and not tool:
        raise InputError("name the capabilities", hint="give ids, or --tool T [--where ...]")
    if expect_version is not None and (not ids or len(ids) != 1):
        raise InputError("--expect-version needs exactly one capability id")
    who = reviewer_name(reviewer, _env(ctx).settings)
    with _env(ctx).store() as store:
        if not ids:
            f = parse_where(where or [], Filter(tool=tool))
            if f.statuses is None and f.pending is None and f.proposal is None:
                f.pending = True
            if dry_run:
                _list_matches(store, f)
                return
            outcomes = bulk(store, f, action, reviewer=who, now=_now, note=note)
        elif dry_run:
            raise InputError("--dry-run is for bulk --tool/--where selections")
        elif len(ids) == 1:
            outcomes = [
                submit(
                    store,
                    ids[0],
                    action,
                    reviewer=who,
                    now=_now,
                    expected_version=expect_version,
                    note=note,
                )
            ]
        else:
            outcomes = review_many(store, ids, action, reviewer=who, now=_now, note=note)
    _print_outcomes(outcomes, verb)


def _list_matches(store: Store, f: Filter) -> None:
    from decomposer.cli.app import _out

    with store.transaction() as session:
        caps = select_capabilities(session, f)
        lines = [f"would change {c.id}: {c.status} · {c.category} · {c.name}" for c in caps]
    out = _out()
    for line in lines:
        out.print(line, markup=False)
    out.print(f"{len(lines)} capabilities match", markup=False)


def approve_cmd(
    ctx: typer.Context,
    ids: IdsArg = None,
    tool: ToolOpt = None,
    where: WhereOpt = None,
    note: NoteOpt = None,
    keep_current: Annotated[
        bool,
        typer.Option(
            "--keep-current",
            help="For a changed or vanished capability: keep it as it is and dismiss the "
            "re-extraction's proposal (instead of applying the proposal).",
        ),
    ] = False,
    expect_version: ExpectOpt = None,
    dry_run: DryRunOpt = False,
    reviewer: ReviewerOpt = None,
) -> None:
    """Approve capabilities (applying any pending re-extraction change), by id or in bulk."""
    action = "keep" if keep_current else "approve"
    verb = "kept" if keep_current else "approved"
    _act(ctx, action, ids, tool, where, note, expect_version, dry_run, reviewer, verb)


def reject_cmd(
    ctx: typer.Context,
    ids: IdsArg = None,
    tool: ToolOpt = None,
    where: WhereOpt = None,
    note: NoteOpt = None,
    expect_version: ExpectOpt = None,
    dry_run: DryRunOpt = False,
    reviewer: ReviewerOpt = None,
) -> None:
    """Reject capabilities, by id or in bulk; rejected ones never appear on pages."""
    _act(ctx, "reject", ids, tool, where, note, expect_version, dry_run, reviewer, "rejected")


def edit_cmd(
    ctx: typer.Context,
    cap_id: Annotated[str, typer.Argument(help="Capability id.")],
    fields: Annotated[
        list[str],
        typer.Option("--field", help=f"Field to change, repeatable: {', '.join(FIELDS)}."),
    ],
    values: Annotated[
        list[str], typer.Option("--value", help="New value, one per --field, in order.")
    ],
    approve: Annotated[
        bool, typer.Option("--approve", help="Also approve it (approved with edits).")
    ] = False,
    note: NoteOpt = None,
    expect_version: ExpectOpt = None,
    reviewer: ReviewerOpt = None,
) -> None:
    """Change a capability's text; the old text stays in its history."""
    from decomposer.cli.app import _env

    if len(fields) != len(values):
        raise InputError("give one --value for each --field")
    changes = dict(zip(fields, values, strict=True))
    who = reviewer_name(reviewer, _env(ctx).settings)
    with _env(ctx).store() as store:
        outcome = submit(
            store,
            cap_id,
            "approve" if approve else "edit",
            reviewer=who,
            now=_now,
            expected_version=expect_version,
            changes=changes,
            note=note,
        )
    _print_outcomes([outcome], "approved" if approve else "edited")


def history_cmd(
    ctx: typer.Context,
    cap_id: Annotated[str, typer.Argument(help="Capability id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show every change to a capability: who, when, what, before and after."""
    from decomposer.cli.app import _env, _out, _print_json

    with _env(ctx).store() as store, store.transaction() as session:
        events = history(session, cap_id)
    if as_json:
        _print_json([e.model_dump(mode="json") for e in events])
        return
    table = Table("when", "who", "action", "status", "v", "changes", "note", box=None)
    for e in events:
        status = (
            f"{e.from_status} → {e.to_status}"
            if e.from_status and e.from_status != e.to_status
            else str(e.to_status or "")
        )
        changes = "; ".join(f"{k}: {_short(v[0])} → {_short(v[1])}" for k, v in e.changes.items())
        table.add_row(
            e.at[:19].replace("T", " "),
            e.actor,
            e.action + (" (with edits)" if e.edited and e.action == "approve" else ""),
            status,
            str(e.version),
            Text(changes),
            Text(e.note or ""),
        )
    _out().print(table)


def _short(value: Any, width: int = 60) -> str:
    text = "∅" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def serve_cmd(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to bind; other than 127.0.0.1 needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the review web UI and JSON API (docs at /docs)."""
    import uvicorn

    from decomposer.cli.app import _env
    from decomposer.web import create_app, ui_settings

    env = _env(ctx)
    ui = ui_settings(os.environ, host)
    app = create_app(env.settings, ui)
    sys.stderr.write(f"decomposer review UI on http://{host}:{port}/ (Ctrl-C to stop)\n")
    uvicorn.run(app, host=host, port=port, log_level="warning")


# --- interactive review -----------------------------------------------------------------------

KEYS = "[a]pprove  [r]eject  [e]dit+approve  [k]eep current  [s]kip  [q]uit"


def review_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    reviewer: ReviewerOpt = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Start from the first pending capability.")
    ] = False,
) -> None:
    """Review a tool's pending capabilities one by one, with their evidence in context.

    Keys: a approve, r reject, e edit in $EDITOR then approve, k keep current (dismiss a
    re-extraction change), s skip, q quit. Every action is saved at once; run it again to
    resume after the last capability you saw.
    """
    from decomposer.cli.app import _env, _out

    env = _env(ctx)
    who = reviewer_name(reviewer, env.settings)
    cursor = env.settings.home / "review" / f"{tool}.cursor"
    out = _out()
    with env.store() as store:
        with store.transaction() as session:
            ids = [c.id for c in select_capabilities(session, Filter(tool=tool, pending=True))]
            start = _resume_at(session, ids, cursor, restart)
        queue = ids[start:] + ids[:start]
        if not queue:
            out.print(f"{tool}: nothing to review", markup=False)
            _clear(cursor)
            return
        out.print(f"{tool}: {len(queue)} capabilities to review", markup=False)
        done = 0
        for index, cap_id in enumerate(queue, 1):
            result = _review_one(store, out, cap_id, who, index, len(queue))
            if result == "quit":
                _save(cursor, cap_id)
                out.print(f"stopped; {done} reviewed. Run it again to continue.", markup=False)
                return
            _save(cursor, cap_id)
            done += result == "done"
    _clear(cursor)
    out.print(f"{tool}: end of the queue; {done} reviewed", markup=False)


def _resume_at(session: Session, ids: list[str], cursor: Path, restart: bool) -> int:
    if restart or not cursor.is_file() or not ids:
        return 0
    last = cursor.read_text("utf-8").strip()
    if last in ids:
        return (ids.index(last) + 1) % len(ids)
    from decomposer.store.models import Capability

    cap = session.get(Capability, last)
    if cap is None:
        return 0
    key = (cap.category, cap.name, cap.id)
    for i, cid in enumerate(ids):
        other = session.get(Capability, cid)
        if other is not None and (other.category, other.name, other.id) > key:
            return i
    return 0


def _save(cursor: Path, cap_id: str) -> None:
    try:
        cursor.parent.mkdir(parents=True, exist_ok=True)
        cursor.write_text(cap_id + "\n", "utf-8")
    except OSError:
        pass


def _clear(cursor: Path) -> None:
    cursor.unlink(missing_ok=True)


def read_key(prompt: str) -> str:
    """One key: a keypress on a terminal, else the first letter of the next input line."""
    sys.stdout.write(prompt + " ")
    sys.stdout.flush()
    if sys.stdin.isatty():
        key = click.getchar()
        sys.stdout.write(key + "\n")
        return key.lower()
    line = sys.stdin.readline()
    if not line:
        return "q"
    return (line.strip()[:1] or " ").lower()


def read_line(prompt: str) -> str:
    sys.stdout.write(prompt + " ")
    sys.stdout.flush()
    return sys.stdin.readline().strip()


def _review_one(store: Store, out: Console, cap_id: str, who: str, index: int, total: int) -> str:
    while True:
        with store.transaction() as session:
            cap = get_capability(session, cap_id)
            version = cap.version
            status = cap.status
            proposal = open_proposal(session, cap_id)
            kind = proposal.kind if proposal else None
            _show(session, out, cap_id, index, total)
            current = {f: getattr(cap, f) for f in FIELDS}
        key = read_key(KEYS)
        try:
            if key == "q":
                return "quit"
            if key == "s":
                return "skipped"
            if key == "a":
                note = (
                    read_line("note (why approve without evidence):")
                    if status == "ungrounded"
                    else None
                )
                _done(
                    out,
                    submit(
                        store,
                        cap_id,
                        "approve",
                        reviewer=who,
                        now=_now,
                        expected_version=version,
                        note=note,
                    ),
                )
                return "done"
            if key == "r":
                note = read_line("note (optional):")
                _done(
                    out,
                    submit(
                        store,
                        cap_id,
                        "reject",
                        reviewer=who,
                        now=_now,
                        expected_version=version,
                        note=note or None,
                    ),
                )
                return "done"
            if key == "k" and kind is not None:
                _done(
                    out,
                    submit(store, cap_id, "keep", reviewer=who, now=_now, expected_version=version),
                )
                return "done"
            if key == "e":
                changes = edit_in_editor(cap_id, current)
                if changes is None:
                    out.print("edit cancelled", markup=False)
                    continue
                note = "approved after editing" if status == "ungrounded" else None
                _done(
                    out,
                    submit(
                        store,
                        cap_id,
                        "approve",
                        reviewer=who,
                        now=_now,
                        expected_version=version,
                        changes=changes,
                        note=note,
                    ),
                )
                return "done"
            out.print(f"unknown key {key!r}: {KEYS}", markup=False)
        except ConflictError as exc:
            out.print(f"conflict: {exc}", markup=False)
        except InputError as exc:
            out.print(f"not done: {exc}", markup=False)


def _done(out: Console, o: Outcome) -> None:
    out.print(f"→ {o.status} (version {o.version})", markup=False)


_SECTION = re.compile(r"^\[([a-z_]+)\]\s*$")


def editor_text(cap_id: str, fields: dict[str, str]) -> str:
    lines = [
        f"# Editing {cap_id}. Lines starting with '#' are ignored.",
        "# Save and close to approve with these edits; delete everything to cancel.",
    ]
    for name in FIELDS:
        lines += [f"[{name}]", fields[name], ""]
    return "\n".join(lines)


def parse_editor_text(text: str) -> dict[str, str] | None:
    """The fields from an edited buffer; ``None`` when emptied (cancel)."""
    values: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _SECTION.match(line)
        if m is not None:
            current = m.group(1)
            if current not in FIELDS:
                raise InputError(f"unknown field [{current}] in the edited text")
            values[current] = []
        elif current is not None:
            values[current].append(line)
    if not values:
        return None
    return {k: "\n".join(v).strip() for k, v in values.items()}


def edit_in_editor(cap_id: str, fields: dict[str, str]) -> dict[str, str] | None:
    """Open $EDITOR on the fields; return the changed ones, or ``None`` if cancelled."""
    edited = click.edit(editor_text(cap_id, fields), extension=".txt", require_save=True)
    if edited is None:
        return None
    parsed = parse_editor_text(edited)
    if parsed is None:
        return None
    changes = {k: v for k, v in parsed.items() if v != fields.get(k)}
    return changes or None


def _show(session: Session, out: Console, cap_id: str, index: int, total: int) -> None:
    cap = get_capability(session, cap_id)
    proposal = open_proposal(session, cap_id)
    out.rule(f"{index}/{total}  {cap.id}")
    title = Text()
    title.append(cap.name, style="bold")
    title.append(f"   {cap.category} · {cap.status} · version {cap.version}", style="dim")
    out.print(title)
    for label, name in (
        ("", "description"),
        ("Unique: ", "unique"),
        ("vs alternatives: ", "vs_alternatives"),
    ):
        out.print(Text(label + getattr(cap, name)))
    if proposal is not None and proposal.kind == "changed":
        out.print(
            Text("Re-extraction proposes (a = apply, k = keep current):", style="bold magenta")
        )
        for name, pair in proposal.changes.items():
            out.print(Text(f"  {name}:", style="bold"))
            out.print(Text(f"  - {pair['old']}", style="red"))
            out.print(Text(f"  + {pair['new']}", style="green"))
    elif proposal is not None and proposal.kind == "vanished":
        out.print(
            Text(
                f"No longer found in the docs (was {proposal.previous_status}): "
                "a/k = keep it, r = reject it",
                style="bold magenta",
            )
        )
    if not cap.evidence:
        out.print(Text("  (no evidence)", style="dim"))
    for ev in cap.evidence:
        doc = ev.document
        where = (
            f"{doc.source}:{ev.start}-{ev.end}" if doc and ev.grounded else "NOT FOUND in the docs"
        )
        out.print(Text(f"  evidence ({where}):", style="dim"))
        if doc is not None and ev.start is not None and ev.end is not None:
            ctx = evidence_context(doc.text, ev.start, ev.end)
            text = Text("    …" + ctx["before"])
            text.append(ctx["match"], style="bold black on yellow")
            text.append(ctx["after"] + "…")
            out.print(text)
        else:
            out.print(Text(f'    "{ev.quote}"', style="red"))
