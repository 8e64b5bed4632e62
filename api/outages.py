"""What a 503 or `/healthz` says is down: a fixed phrase, never the exception's text.

A driver's message names the server, its port and the database user ("connection to server at
"db.internal" (10.0.0.7), port 5432 failed ... user "syncguard""), which a caller outside must not
learn. The phrase says which dependency and how; the exception itself goes to the log.

A statement timeout (API_STATEMENT_TIMEOUT_S) is answered like an outage, 503 with `Retry-After`: what
usually makes a statement of this API run long is load or a lock held by a concurrent writer, both of
which pass, and the body says it was the time limit.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable"
DATABASE_BUSY = "database busy: every connection of this API process is in use"
DATABASE_TOO_SLOW = "database too slow: a statement ran past the API's time limit"
REDIS_UNAVAILABLE = "Redis unavailable"
INTERNAL_ERROR = "an internal error (the service's log has it)"
_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cut off by statement_timeout


def what_is_down(exc: BaseException) -> str:
    if isinstance(exc, RedisError):
        return REDIS_UNAVAILABLE
    if isinstance(exc, PoolTimeout):
        return DATABASE_BUSY
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == _QUERY_CANCELED:
        return DATABASE_TOO_SLOW
    if isinstance(exc, SQLAlchemyError):
        return DATABASE_UNAVAILABLE
    return INTERNAL_ERROR


def logged(phrase: str, exc: BaseException, where: str) -> str:
    """Log what really happened, once, beside the phrase the caller gets; return the phrase."""
    lines = str(exc).strip().splitlines()
    log.warning("%s (%s): %s: %s", phrase, where, type(exc).__name__, lines[0] if lines else "no reason given")
    return phrase
