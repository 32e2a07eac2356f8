"""API tokens for scripts: the ``api_tokens`` table (migration 0012) and create/list/revoke/verify.

A token is 32 random bytes (``secrets.token_urlsafe``) behind a ``dcp_`` prefix and is shown
once. Only its SHA-256 is stored: a random 256-bit secret cannot be guessed or brute-forced from
its hash, so a slow password hash (bcrypt, argon2) would add cost per request and no safety.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, DateTime, Index, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from decomposer.core.errors import InputError, NotFoundError
from decomposer.store.models import Base

PREFIX = "dcp_"
NAME_MAX = 100
TOUCH_EVERY = timedelta(minutes=1)
"""How stale ``last_used_at`` may be before a request records its use again."""


class ApiToken(Base):
    """One API token: a name, the SHA-256 of the secret, and when it was made, used, revoked."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_name", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the secret, only its first characters (``hint``)."""

    id: int
    name: str
    hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenInfo:
        return cls(row.id, row.name, row.hint, row.created_at, row.last_used_at, row.revoked_at)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, name: str, now: datetime) -> tuple[TokenInfo, str]:
    """A new token and its secret (returned once, never stored); names of live tokens are
    unique so ``revoke NAME`` is unambiguous."""
    name = " ".join(name.split())
    if not name or len(name) > NAME_MAX:
        raise InputError(f"a token name must be 1 to {NAME_MAX} characters")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name, _live())) is not None:
        raise InputError(
            f"a live token named {name!r} already exists",
            hint=f"revoke it first (`decomposer token revoke {name}`) or pick another name",
        )
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=digest(secret), hint=secret[:10], created_at=now)
    session.add(row)
    session.flush()
    return TokenInfo.of(row), secret


def list_tokens(session: Session, include_revoked: bool = False) -> list[TokenInfo]:
    q = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        q = q.where(_live())
    return [TokenInfo.of(row) for row in session.scalars(q)]


def revoke_token(session: Session, name_or_id: str, now: datetime) -> TokenInfo:
    """Revoke the live token with this name (or id); the row stays for the record."""
    q = select(ApiToken).where(_live())
    q = (
        q.where(ApiToken.id == int(name_or_id))
        if name_or_id.isdigit()
        else q.where(ApiToken.name == " ".join(name_or_id.split()))
    )
    row = session.scalar(q)
    if row is None:
        raise NotFoundError(f"no live token {name_or_id!r}", hint="see `decomposer token list`")
    row.revoked_at = now
    session.flush()
    return TokenInfo.of(row)


def verify_token(
    session: Session, secret: str, now: datetime, *, touch: bool = True
) -> TokenInfo | None:
    """The live token with this secret, else ``None``; with ``touch`` its last use is recorded,
    at most once a minute (a write: a script's every GET would otherwise take the write lock;
    the review server retries without it when the database is busy, so a read request still
    works while another process holds the lock)."""
    if not secret.startswith(PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(secret), _live()))
    if row is None:
        return None
    last = row.last_used_at
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)  # SQLite hands back naive datetimes
    if touch and (last is None or now - last >= TOUCH_EVERY):
        row.last_used_at = now
    return TokenInfo.of(row)


def _live() -> ColumnElement[bool]:
    return ApiToken.revoked_at.is_(None)
