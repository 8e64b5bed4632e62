"""Engine and session factory, one per process and URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import get_settings

_engines: dict[str, Engine] = {}
_sessions: dict[str, sessionmaker[Session]] = {}


def _create_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        # Every statement here touches a handful of rows by index; a parallel plan only adds worker
        # start-up (milliseconds each time), which PostgreSQL picks when its row estimates are off.
        connect_args = (
            {"connect_timeout": 10, "options": "-c max_parallel_workers_per_gather=0"}
            if url.startswith("postgresql")
            else {}
        )
        return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4, connect_args=connect_args)
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


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    if url not in _engines:
        _engines[url] = _create_engine(url)
    return _engines[url]


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    url = url or get_settings().database_url
    if url not in _sessions:
        _sessions[url] = sessionmaker(get_engine(url), expire_on_commit=False)
    session = _sessions[url]()
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
