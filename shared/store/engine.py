"""Engine and session factory, one per process, URL and set of connection options.

Every PostgreSQL connection carries a `statement_timeout`, so a statement stuck behind a lock or a bad
plan gives its connection back instead of holding it for good. Workers, beat and the CLI take
DATABASE_STATEMENT_TIMEOUT_S; the HTTP API calls `use_engine_options` at start with its own shorter
API_STATEMENT_TIMEOUT_S and pool, so the shared code it calls (the producer, the tenant cache) runs
under the API's bounds without passing them along. Migrations run without a timeout (`MIGRATIONS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings, get_settings


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How one engine connects: hashable, since engines are cached by URL and options."""

    statement_timeout_s: float  # 0: none (PostgreSQL's own default)
    pool_size: int = 6  # connections at most: two kept open, the rest opened when needed
    pool_timeout_s: float = 30  # a checkout waits this long for a free connection, then TimeoutError

    @classmethod
    def for_workers(cls, settings: Settings) -> EngineOptions:
        return cls(statement_timeout_s=settings.database_statement_timeout_s)

    @classmethod
    def for_api(cls, settings: Settings) -> EngineOptions:
        return cls(
            statement_timeout_s=settings.api_statement_timeout_s,
            pool_size=settings.api_database_pool_size,
            pool_timeout_s=settings.api_database_pool_timeout_s,
        )


# `syncguard db upgrade` builds indexes over whole tables: no statement timeout may cut that short.
MIGRATIONS = EngineOptions(statement_timeout_s=0)

_engines: dict[tuple[str, EngineOptions], Engine] = {}
_sessions: dict[tuple[str, EngineOptions], sessionmaker[Session]] = {}
_process_options: EngineOptions | None = None


def use_engine_options(options: EngineOptions) -> None:
    """The options every engine this process builds from now on gets, unless a caller names others."""
    global _process_options
    _process_options = options


def _postgresql_options(options: EngineOptions) -> str:
    # Every statement here touches a handful of rows by index; a parallel plan only adds worker
    # start-up (milliseconds each time), which PostgreSQL picks when its row estimates are off.
    settings = ["-c max_parallel_workers_per_gather=0"]
    if options.statement_timeout_s > 0:
        settings.append(f"-c statement_timeout={max(1, round(options.statement_timeout_s * 1000))}")
    return " ".join(settings)


def _create_engine(url: str, options: EngineOptions) -> Engine:
    if not url.startswith("sqlite"):
        connect_args = (
            {"connect_timeout": 10, "options": _postgresql_options(options)} if url.startswith("postgresql") else {}
        )
        kept_open = min(2, options.pool_size)
        return create_engine(
            url,
            # Kept on purpose: only the exports' path retries a connection that died while pooled. Without
            # the ping, test_database_outage fails in its own checking process (a dead pooled connection,
            # AdminShutdown), as the CLI, the API (a 503) and the beat tasks (no retry) would. Its cost is
            # one round trip per checkout, one per batch since apply_many works in bulk: within noise.
            pool_pre_ping=True,
            pool_size=kept_open,
            max_overflow=options.pool_size - kept_open,
            pool_timeout=options.pool_timeout_s,
            connect_args=connect_args,
        )
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _key(url: str | None, options: EngineOptions | None) -> tuple[str, EngineOptions]:
    settings = get_settings()
    return url or settings.database_url, options or _process_options or EngineOptions.for_workers(settings)


def get_engine(url: str | None = None, options: EngineOptions | None = None) -> Engine:
    key = _key(url, options)
    if key not in _engines:
        _engines[key] = _create_engine(*key)
    return _engines[key]


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    key = _key(url, None)
    if key not in _sessions:
        _sessions[key] = sessionmaker(get_engine(*key), expire_on_commit=False)
    session = _sessions[key]()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


def forget_inherited_connections() -> None:
    """A forked worker child must open its own connections, never reuse its parent's."""
    for engine in _engines.values():
        engine.dispose(close=False)


def forget_engines() -> None:
    """Close every pool and forget it: the next use connects afresh (after settings changed)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _sessions.clear()
