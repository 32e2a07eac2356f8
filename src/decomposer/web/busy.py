"""A busy database answered quickly: a write that waited its short busy timeout for a lock
another process holds (an ``extract`` finishing its run, a bulk CLI review) gets 503 "busy, try
again" with ``Retry-After``, not a 500 after 30 s.

The web store is opened with ``Settings.web_busy_timeout`` (``store.engine.make_engine``), and
handlers run store work in the thread pool, never on the event loop, so one waiting write
holds up no other request.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

RETRY_AFTER_S = 2
BUSY_MESSAGE = "The database is busy (another process is writing to it); try again in a moment."
_SQLITE_LOCKED = ("database is locked", "database table is locked")
_PG_LOCK_NOT_AVAILABLE = "55P03"
"""SQLSTATE of a PostgreSQL statement stopped by ``lock_timeout``."""


def is_busy(exc: OperationalError) -> bool:
    """Whether the error is a lock wait that timed out (SQLite or PostgreSQL)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
        return True
    text = str(orig).lower()
    return any(phrase in text for phrase in _SQLITE_LOCKED)


def retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_S)}
