"""A busy database answered quickly: 503 "busy, try again" with ``Retry-After`` when a write's
short wait for another process's lock runs out.

Another process (an ``extract`` finishing its run, a bulk CLI review) may hold the write lock.
The web store is opened with ``Settings.web_busy_timeout`` (``store.engine.make_engine``) and
handlers run store work in the thread pool, never on the event loop, so a waiting write holds
up no other request and gets its answer in seconds, not a 500 after 30 s.
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
