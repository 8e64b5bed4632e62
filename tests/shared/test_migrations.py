"""The migration builds exactly the schema the models describe, on PostgreSQL and on SQLite."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from shared.store.migrate import upgrade
from shared.store.tables import Base


def _drift(engine_url: str) -> list[object]:
    engine = create_engine(engine_url)
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_the_postgresql_schema_matches_the_models(database: str) -> None:
    assert _drift(database) == []


def test_the_embedded_sqlite_default_migrates_from_scratch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'syncguard.sqlite3'}"
    upgrade(url)
    assert {"tenants", "directory_objects", "claimed_values", "provisioning_errors", "failed_exports"} <= set(
        inspect(create_engine(url)).get_table_names()
    )
    assert _drift(url) == []
    upgrade(url)  # running it again is harmless
