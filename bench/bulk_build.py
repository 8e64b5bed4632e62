"""Building a million rows for a benchmark in seconds: the indexes are built once, after the rows.

Inserting 1,000,000 objects into `directory_objects` with its indexes in place (three trigram and
JSONB GIN indexes among them) took over 7 minutes on the busy 2-core machine, one index entry at a
time, and never finished before it was stopped; building the same indexes over the finished table
takes a fraction of that. The indexes and unique constraints are re-created from their own
definitions (`pg_indexes`, `pg_get_constraintdef`), so the benchmark reads exactly the schema the
migrations made, and a generated row that broke a unique constraint still fails the build.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, text

_PLAIN_INDEXES = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
WHERE i.schemaname = current_schema() AND i.tablename = ANY (:tables)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = to_regclass(quote_ident(i.indexname)))
ORDER BY i.indexname
"""


_UNIQUE_CONSTRAINTS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE contype = 'u' AND conrelid = ANY (SELECT to_regclass(t) FROM unnest(CAST(:tables AS text[])) AS t)
ORDER BY conname
"""


@contextmanager
def indexes_built_after(connection: Connection, tables: Sequence[str]) -> Iterator[None]:
    """Drop the plain indexes and unique constraints of `tables`, let the caller insert, then build
    them again from their own definitions, each in one sort over the finished table (in the caller's
    transaction, so a failed build leaves the schema as it was). Primary keys stay: foreign keys
    point at them."""
    names = {"tables": list(tables)}
    indexes = connection.execute(text(_PLAIN_INDEXES), names).all()
    uniques = connection.execute(text(_UNIQUE_CONSTRAINTS), names).all()
    for table, name, _definition in uniques:
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _definition in indexes:
        connection.execute(text(f'DROP INDEX "{name}"'))
    yield
    # A trigram GIN index over 1,000,000 display names holds some 35,000,000 entries: with the
    # default 64 MB PostgreSQL writes them out in many small runs.
    connection.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
    for table, name, definition in uniques:
        connection.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    for _name, definition in indexes:
        connection.execute(text(definition))


def build(script: str, parameters: dict[str, int], tables: Sequence[str], then: str = "") -> None:
    """Run each `;`-ended statement of `script` with `parameters`, the plain indexes of `tables` built
    after its rows, then the statements of `then` (a cascading delete, which needs the indexes and the
    foreign keys back), in one transaction; then VACUUM ANALYZE, so the planner knows the tables as it
    knows tables that have lived a while."""
    from shared.store.engine import get_engine

    with get_engine().begin() as connection:
        connection.execute(text("SET LOCAL statement_timeout = 0"))  # millions of rows outlast the service's bound
        with indexes_built_after(connection, tables), _row_triggers_skipped(connection):
            _run(connection, script, parameters)
        _run(connection, then, parameters)  # with the foreign keys' checks and cascades again
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SET statement_timeout = 0"))
        connection.execute(text("VACUUM ANALYZE"))


@contextmanager
def _row_triggers_skipped(connection: Connection) -> Iterator[None]:
    """No foreign-key check (two trigger calls a row) and no trigger while the generated rows go in:
    they are consistent by construction, and the constraints hold for everything the benchmark does
    after. Measured at 100,000 quarantines: claims 20.9 -> 3.4 s, entries 8.7 -> 2.3 s on a busy
    machine. Only a superuser may; anyone else builds with the checks, slower."""
    from sqlalchemy.exc import DBAPIError

    try:
        with connection.begin_nested():
            connection.execute(text("SET LOCAL session_replication_role = replica"))
    except DBAPIError:
        yield
        return
    yield
    connection.execute(text("SET LOCAL session_replication_role = origin"))


def _run(connection: Connection, script: str, parameters: dict[str, int]) -> None:
    for statement in script.split(";\n"):
        if statement.strip():
            connection.execute(text(statement), parameters)
