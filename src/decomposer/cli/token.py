"""CLI commands for API tokens: ``token create`` (prints the secret once), ``token list`` and
``token revoke``; scripts send the token as ``Authorization: Bearer TOKEN`` to the review API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from decomposer.cli import common

if TYPE_CHECKING:
    from decomposer.store.tokens import TokenInfo

token_app = typer.Typer(
    help="API tokens for scripts using the review API (sent as a bearer header).",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")


def _as_dict(info: TokenInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "name": info.name,
        "hint": info.hint,
        "created_at": info.created_at.isoformat(),
        "last_used_at": info.last_used_at.isoformat() if info.last_used_at else None,
        "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
    }


@token_app.command("create")
def create_cmd(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option("--name", help="What the token is for, e.g. the script's name.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Create a token and print it once; only its SHA-256 is stored.

    Example: decomposer token create --name nightly-approvals
    """
    from decomposer.core.clock import utcnow
    from decomposer.store.tokens import create_token

    with common.env(ctx).store() as store, store.transaction() as session:
        info, secret = create_token(session, name, utcnow())
    if as_json:
        common.print_json({**_as_dict(info), "token": secret})
        return
    out = common.out()
    out.print(f"created token {info.id} ({info.name}); it is shown only now:", highlight=False)
    print(secret)
    out.print("send it as: Authorization: Bearer TOKEN", highlight=False)


@token_app.command("list")
def list_cmd(
    ctx: typer.Context,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked tokens.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List tokens (never their secrets: only the first characters).

    Example: decomposer token list --revoked
    """
    from rich.table import Table

    from decomposer.store.tokens import list_tokens

    with common.env(ctx).store() as store, store.transaction() as session:
        infos = list_tokens(session, include_revoked=revoked)
    if as_json:
        common.print_json([_as_dict(i) for i in infos])
        return
    table = Table("id", "name", "starts with", "created", "last used", "revoked")
    for i in infos:
        table.add_row(
            str(i.id),
            i.name,
            i.hint + "…",
            i.created_at.isoformat(timespec="minutes"),
            i.last_used_at.isoformat(timespec="minutes") if i.last_used_at else "never",
            i.revoked_at.isoformat(timespec="minutes") if i.revoked_at else "",
        )
    common.out().print(table)


@token_app.command("revoke")
def revoke_cmd(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(help="The token's name or id.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: requests with it get 401 from then on.

    Example: decomposer token revoke nightly-approvals
    """
    from decomposer.core.clock import utcnow
    from decomposer.store.tokens import revoke_token

    with common.env(ctx).store() as store, store.transaction() as session:
        info = revoke_token(session, token, utcnow())
    if as_json:
        common.print_json(_as_dict(info))
        return
    common.out().print(f"revoked token {info.id} ({info.name})", highlight=False)
