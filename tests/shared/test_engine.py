"""Every PostgreSQL connection carries its process's statement timeout (shared/store/engine.py)."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.settings import Settings, get_settings
from shared.store.engine import MIGRATIONS, EngineOptions, get_engine, transaction


def statement_timeout(options: EngineOptions | None, database: str) -> str:
    with get_engine(database, options).connect() as connection:
        return str(connection.execute(text("SHOW statement_timeout")).scalar_one())


def test_workers_and_the_cli_get_database_statement_timeout_s(database: str) -> None:
    assert get_settings().database_statement_timeout_s == 60
    assert statement_timeout(None, database) == "1min"
    with transaction(database) as session:
        assert session.execute(text("SHOW statement_timeout")).scalar_one() == "1min"


def test_the_api_gets_its_own_timeout_and_pool_on_the_same_url(database: str) -> None:
    settings = Settings(
        database_url=database, api_statement_timeout_s=2.5, api_database_pool_size=3, api_database_pool_timeout_s=0.2
    )
    api = EngineOptions.for_api(settings)
    assert statement_timeout(api, database) == "2500ms"
    engine = get_engine(database, api)
    assert engine is not get_engine(database), "one engine per URL and options"
    with ExitStack() as held:
        for _ in range(3):
            held.enter_context(engine.connect()).execute(text("SELECT 1"))
        with pytest.raises(PoolTimeout):
            engine.connect()


def test_migrations_run_without_a_timeout_and_zero_means_none(database: str) -> None:
    assert statement_timeout(MIGRATIONS, database) == "0"
    assert statement_timeout(EngineOptions(statement_timeout_s=0), database) == "0"


def test_a_statement_past_the_timeout_is_cancelled(database: str) -> None:
    with pytest.raises(OperationalError) as cancelled:
        with get_engine(database, EngineOptions(statement_timeout_s=0.2)).connect() as connection:
            connection.execute(text("SELECT pg_sleep(5)"))
    assert getattr(cancelled.value.orig, "sqlstate", None) == "57014"
    assert "statement timeout" in str(cancelled.value)
