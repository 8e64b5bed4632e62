"""Which errors `apply_export` retries and which it files as a dead letter at once (workers.exports)."""

from __future__ import annotations

import psycopg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DataError, IntegrityError, InternalError, OperationalError

from shared.exports.outcomes import RetryLater
from shared.exports.transient import is_transient
from shared.locks.manager import LocksBusy


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "error",
    [
        LocksBusy("sg:{t}:value:a@b.c"),
        RetryLater("values kept changing"),
        RedisConnectionError("Redis went away"),
        OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection")),
        InternalError("COMMIT", {}, _Orig("40001")),  # serialization failure
        InternalError("SELECT 1", {}, _Orig("57P01")),  # terminated by an administrator
    ],
    ids=lambda e: type(e).__name__,
)
def test_obstacles_that_pass_are_retried(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        DataError("INSERT", {}, _Orig("22021")),  # bad data a retry sends again
        InternalError("INSERT", {}, _Orig("P0001")),  # a trigger refusing the row
        IntegrityError("INSERT", {}, _Orig("23503")),  # a foreign key the export cannot fix
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        KeyError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_retrying_cannot_fix_are_filed_at_once(error: Exception) -> None:
    assert not is_transient(error)
