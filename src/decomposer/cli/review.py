"""CLI commands for reviewing by id or in bulk: ``approve``, ``reject``, ``edit``, ``history``,
and ``serve`` (the web UI).

The interactive ``review`` is in ``decomposer.cli.interactive``. These commands parse options
and print; the work is in ``decomposer.review.actions`` and ``decomposer.web``, imported inside
the commands.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from decomposer.cli import common
from decomposer.cli.choices import REVIEW_FIELDS
from decomposer.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    from decomposer.core.config import Settings
    from decomposer.review.actions import Outcome
    from decomposer.review.queries import Filter
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


def now() -> datetime:
    """The review clock, read at the moment each action is stored."""
    from decomposer.core.clock import utcnow

    return utcnow()


def _print_outcomes(outcomes: list[Outcome], verb: str, as_json: bool = False) -> None:
    if as_json:
        from dataclasses import asdict

        common.print_json({"action": verb, "changed": [asdict(o) for o in outcomes]})
        return
    out = common.out()
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
    as_json: bool = False,
) -> None:
    from decomposer.review.actions import bulk, review_many, submit
    from decomposer.review.queries import Filter, parse_where

    if ids and (tool or where):
        raise InputError("give capability ids or --tool/--where, not both")
    if not ids and not tool:
        raise InputError("name the capabilities", hint="give ids, or --tool T [--where ...]")
    if expect_version is not None and (not ids or len(ids) != 1):
        raise InputError("--expect-version needs exactly one capability id")
    who = reviewer_name(reviewer, common.env(ctx).settings)
    with common.env(ctx).store() as store:
        if not ids:
            f = parse_where(where or [], Filter(tool=tool))
            if f.statuses is None and f.pending is None and f.proposal is None:
                f.pending = True
            if dry_run:
                _list_matches(store, f, as_json)
                return
            outcomes = bulk(store, f, action, reviewer=who, now=now, note=note)
        elif dry_run:
            raise InputError("--dry-run is for bulk --tool/--where selections")
        elif len(ids) == 1:
            outcomes = [
                submit(
                    store,
                    ids[0],
                    action,
                    reviewer=who,
                    now=now,
                    expected_version=expect_version,
                    note=note,
                )
            ]
        else:
            outcomes = review_many(store, ids, action, reviewer=who, now=now, note=note)
    _print_outcomes(outcomes, verb, as_json)


def _list_matches(store: Store, f: Filter, as_json: bool = False) -> None:
    from decomposer.review.queries import select_capabilities

    with store.transaction() as session:
        caps = select_capabilities(session, f)
        lines = [f"would change {c.id}: {c.status} · {c.category} · {c.name}" for c in caps]
        would = [{"id": c.id, "status": c.status, "name": c.name} for c in caps]
    if as_json:
        common.print_json({"action": "dry-run", "would_change": would})
        return
    out = common.out()
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
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Approve capabilities (applying any pending re-extraction change), by id or in bulk."""
    action = "keep" if keep_current else "approve"
    verb = "kept" if keep_current else "approved"
    _act(ctx, action, ids, tool, where, note, expect_version, dry_run, reviewer, verb, as_json)


def reject_cmd(
    ctx: typer.Context,
    ids: IdsArg = None,
    tool: ToolOpt = None,
    where: WhereOpt = None,
    note: NoteOpt = None,
    expect_version: ExpectOpt = None,
    dry_run: DryRunOpt = False,
    reviewer: ReviewerOpt = None,
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Reject capabilities, by id or in bulk; rejected ones never appear on pages."""
    _act(
        ctx,
        "reject",
        ids,
        tool,
        where,
        note,
        expect_version,
        dry_run,
        reviewer,
        "rejected",
        as_json,
    )


def edit_cmd(
    ctx: typer.Context,
    cap_id: Annotated[str, typer.Argument(help="Capability id.")],
    fields: Annotated[
        list[str],
        typer.Option("--field", help=f"Field to change, repeatable: {', '.join(REVIEW_FIELDS)}."),
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
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Change a capability's text; the old text stays in its history."""
    from decomposer.review.actions import submit

    if len(fields) != len(values):
        raise InputError("give one --value for each --field")
    changes = dict(zip(fields, values, strict=True))
    who = reviewer_name(reviewer, common.env(ctx).settings)
    with common.env(ctx).store() as store:
        outcome = submit(
            store,
            cap_id,
            "approve" if approve else "edit",
            reviewer=who,
            now=now,
            expected_version=expect_version,
            changes=changes,
            note=note,
        )
    _print_outcomes([outcome], "approved" if approve else "edited", as_json)


def history_cmd(
    ctx: typer.Context,
    cap_id: Annotated[str, typer.Argument(help="Capability id.")],
    as_json: common.JsonOpt = False,
    nl: common.NlOpt = False,
) -> None:
    """Show every change to a capability: who, when, what, before and after."""
    from rich.table import Table
    from rich.text import Text

    from decomposer.review.queries import history

    with common.env(ctx).store() as store, store.transaction() as session:
        events = history(session, cap_id)
    if common.print_rows(events, as_json, nl):
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
    common.out().print(table)


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
    common.require("web", "decomposer serve")
    if not 1 <= port <= MAX_PORT:
        raise InputError(f"--port must be between 1 and {MAX_PORT}, got {port}")
    import uvicorn

    from decomposer.web import create_app, ui_settings

    env = common.env(ctx)
    ui = ui_settings(os.environ, host)
    sock = listen(host, port)
    app = create_app(env.settings, ui)
    sys.stderr.write(f"decomposer review UI on http://{host}:{port}/ (Ctrl-C to stop)\n")
    if ui.secure_cookie:
        sys.stderr.write("its session cookie is Secure: reach it over https (a TLS proxy)\n")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


MAX_PORT = 65535


def listen(host: str, port: int) -> socket.socket:
    """Bind before announcing the URL, so a taken or forbidden port is one line, not a log."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).split(" (while attempting")[0]
        raise InputError(f"cannot listen on {host}:{port}: {reason}") from None
