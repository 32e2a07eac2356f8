"""Opening the database: engine settings, migrations to head, sessions with one transaction.

Alembic is imported only when the schema is behind: a current database is recognised by comparing
its ``alembic_version`` row with the head revision read from the migration files, which keeps
every command's start-up free of Alembic's import cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    make_url,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from decomposer.core.errors import StoreError
from decomposer.store import batch_models as _batch_models  # noqa: F401  (maps every table)
from decomposer.store import catalogue_models as _catalogue_models  # noqa: F401
from decomposer.store import contrast_models as _contrast_models  # noqa: F401
from decomposer.store import eval_models as _eval_models  # noqa: F401
from decomposer.store import match_models as _match_models  # noqa: F401
from decomposer.store import review_models as _review_models  # noqa: F401
from decomposer.store import tokens as _tokens  # noqa: F401
from decomposer.store.lite import MIGRATIONS, head_revision, known_revisions
from decomposer.store.models import StoreInfo

if TYPE_CHECKING:
    from alembic.config import Config

SQLITE_BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Store:
    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits as one unit, or not at all."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


BACKENDS = ("sqlite", "postgresql")
URL_HINT = "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB in DECOMPOSER_DATABASE_URL"
WRITTEN_BY = "schema_written_by"


def parse_url(url: str) -> URL:
    """The URL, checked to name a database decomposer can store in; the text is never echoed,
    since it may carry a password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError("the database URL is not a URL", hint=URL_HINT) from None
    if parsed.get_backend_name() not in BACKENDS:
        raise StoreError(
            f"unsupported database {parsed.get_backend_name()!r}: decomposer stores its data "
            "in SQLite or PostgreSQL",
            hint=URL_HINT,
        )
    return parsed


def make_engine(url: str, busy_timeout: float | None = None) -> Engine:
    """An engine; ``busy_timeout`` (seconds) bounds how long a write waits for a lock held by
    another process (SQLite's busy timeout, PostgreSQL's ``lock_timeout``) before it fails with
    ``OperationalError``. The review server sets it short to answer "busy" instead of hanging;
    by default SQLite waits 30 s and PostgreSQL for ever."""
    parsed = parse_url(url)
    try:
        return _create(url, parsed, busy_timeout)
    except (NoSuchModuleError, ModuleNotFoundError):
        raise StoreError(
            f"no database driver {parsed.drivername!r} is installed", hint=URL_HINT
        ) from None


def _create(url: str, parsed: URL, busy_timeout: float | None) -> Engine:
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_dir(url)
        ms = SQLITE_BUSY_TIMEOUT_MS if busy_timeout is None else max(1, int(busy_timeout * 1000))
        engine = create_engine(url, connect_args={"timeout": ms / 1000})
        event.listen(engine, "connect", partial(_sqlite_pragmas, ms))
        return engine
    if busy_timeout is not None and parsed.drivername == "postgresql+psycopg":
        ms = max(1, int(busy_timeout * 1000))
        return create_engine(
            url, pool_pre_ping=True, connect_args={"options": f"-c lock_timeout={ms}"}
        )
    return create_engine(url, pool_pre_ping=True)


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot open the database: cannot create {Path(path).parent} ({exc.strerror})",
                hint="check DECOMPOSER_HOME or DECOMPOSER_DATABASE_URL",
            ) from None


def _sqlite_pragmas(busy_timeout_ms: int, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def stored_revision(conn: Connection) -> str | None:
    """The revision recorded in the database; ``None`` for an empty one."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return str(rows[0]) if len(rows) == 1 else None


def migrate(engine: Engine, url: str) -> None:
    """Upgrade to the newest schema when the database is behind; a no-op otherwise. A schema
    from a newer decomposer is refused, naming the version that wrote it."""
    with engine.connect() as conn:
        stored = stored_revision(conn)
        if stored is not None and stored == head_revision():
            return
        known = known_revisions()
        if stored is not None and known is not None and stored not in known:
            raise StoreError(_newer_schema(conn, stored), hint=_UPGRADE_HINT)
    _upgrade(engine, url)
    _record_version(engine)


_UPGRADE_HINT = "upgrade decomposer (pip install -U decomposer), or point DECOMPOSER_HOME elsewhere"


def _newer_schema(conn: Connection, stored: str) -> str:
    by = None
    if inspect(conn).has_table("store_info"):
        by = conn.execute(
            text("SELECT value FROM store_info WHERE key = :key"), {"key": WRITTEN_BY}
        ).scalar()
    made = f"decomposer {by}" if by else "a newer decomposer"
    return (
        f"this store was migrated by {made} (schema {stored}); decomposer {_version()} "
        f"knows schemas up to {head_revision() or 'its newest'}"
    )


def _record_version(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(StoreInfo).where(StoreInfo.key == WRITTEN_BY))
        conn.execute(insert(StoreInfo).values(key=WRITTEN_BY, value=_version()))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("decomposer")
    except PackageNotFoundError:
        return "(unknown version)"


def _upgrade(engine: Engine, url: str) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


_OPEN_HINT = "check DECOMPOSER_DATABASE_URL or DECOMPOSER_HOME"


def _cannot_open(url: str, exc: DatabaseError) -> str:
    """One line: the driver's first line, which names the cause without the SQL or the URL."""
    reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "unknown error"
    if "file is not a database" in reason:
        return f"cannot open the database: {make_url(url).database} is not a SQLite database"
    return f"cannot open the database ({type(exc.orig).__name__}: {reason})"


def open_store(url: str, *, upgrade: bool = True, busy_timeout: float | None = None) -> Store:
    engine = make_engine(url, busy_timeout)
    try:
        if upgrade:
            migrate(engine, url)
    except DatabaseError as exc:
        engine.dispose()
        raise StoreError(_cannot_open(url, exc), hint=_OPEN_HINT) from None
    except StoreError:
        engine.dispose()
        raise
    return Store(engine, sessionmaker(engine, expire_on_commit=False))
