"""The interactive ``review`` command: pending capabilities one at a time, resumable.

Each capability is shown with its evidence in context and decided with one key; a cursor file
lets the next run resume where this one stopped. Edits go through ``$EDITOR`` as a small
sectioned text buffer (``editor_text`` / ``parse_editor_text``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from decomposer.cli import common
from decomposer.cli.choices import REVIEW_FIELDS as FIELDS
from decomposer.cli.review import ReviewerOpt, now, reviewer_name
from decomposer.core.errors import ConflictError, InputError

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.orm import Session

    from decomposer.review.actions import Outcome
    from decomposer.store import Store

KEYS = "[a]pprove  [r]eject  [e]dit+approve  [k]eep current  [s]kip  [q]uit"
LINE_KEYS = "  model-written line: [m] approve  [n] reject"


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
    from decomposer.review.queries import Filter, select_capabilities

    env = common.env(ctx)
    who = reviewer_name(reviewer, env.settings)
    cursor = env.settings.home / "review" / f"{tool}.cursor"
    out = common.out()
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
        key = typer.getchar()
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
    from decomposer.review.actions import submit
    from decomposer.review.queries import get_capability, open_proposal

    while True:
        with store.transaction() as session:
            cap = get_capability(session, cap_id)
            version = cap.version
            status = cap.status
            proposal = open_proposal(session, cap_id)
            kind = proposal.kind if proposal else None
            _show(session, out, cap_id, index, total)
            line = _show_line(session, out, cap_id)
            current = {f: getattr(cap, f) for f in FIELDS}
        key = read_key(KEYS + (LINE_KEYS if line is not None else ""))
        try:
            if key == "q":
                return "quit"
            if key in ("m", "n") and line is not None:
                _review_line(store, out, line, "approve" if key == "m" else "reject", who)
                continue
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
                        now=now,
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
                        now=now,
                        expected_version=version,
                        note=note or None,
                    ),
                )
                return "done"
            if key == "k" and kind is not None:
                _done(
                    out,
                    submit(store, cap_id, "keep", reviewer=who, now=now, expected_version=version),
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
                        now=now,
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


def _show_line(session: Session, out: Console, cap_id: str) -> int | None:
    """The capability's model-written line awaiting review, with both tools' cited quotes side
    by side; its id, or None when no line waits."""
    from decomposer.cli.contrast import print_line
    from decomposer.contrast.lines import line_for

    shown = line_for(session, cap_id)
    if shown is None or shown.status != "proposed":
        return None
    print_line(shown)
    return shown.id


def _review_line(store: Store, out: Console, line_id: int, action: str, who: str) -> None:
    from decomposer.contrast.lines import review_line

    with store.transaction() as session:
        done = review_line(session, line_id, action, reviewer=who, now=now())
        out.print(f"model-written line {done.id}: {done.status}", markup=False)


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
    import click

    edited = click.edit(editor_text(cap_id, fields), extension=".txt", require_save=True)
    if edited is None:
        return None
    parsed = parse_editor_text(edited)
    if parsed is None:
        return None
    changes = {k: v for k, v in parsed.items() if v != fields.get(k)}
    return changes or None


def _show(session: Session, out: Console, cap_id: str, index: int, total: int) -> None:
    from rich.text import Text

    from decomposer.review.queries import evidence_context, get_capability, open_proposal

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
