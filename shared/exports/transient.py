"""The one transient-error policy: which failures doing the same work again can fix.

Two questions, asked by everyone who applies, releases or serves:
- `lost_race`: the database refused this attempt only because a concurrent one won (the claims
  table's uniqueness guard, a serialization failure, a deadlock). Do it again at once, on fresh reads.
- `is_transient`: doing it again *later* can succeed (a lost race, busy locks, a database or Redis that
  does not answer now). Workers retry with back-off; the API answers 503 with `Retry-After`.
Anything else is a defect or bad input: retrying would only repeat it, so it is recorded instead.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.directory.claims import ClaimTaken
from shared.exports.outcomes import RetryLater
from shared.locks.manager import LocksBusy

# serialization_failure, deadlock_detected: PostgreSQL rolled one of two racing transactions back.
_LOST_RACE_SQLSTATES = frozenset({"40001", "40P01"})
# SQLSTATE classes retrying can fix: connection exception, transaction rollback (serialization,
# deadlock), insufficient resources, operator intervention (admin shutdown, cannot connect now).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})


def _sqlstate(exc: DBAPIError) -> str:
    return str(getattr(exc.orig, "sqlstate", None) or "")


def lost_race(exc: BaseException) -> bool:
    """Whether a concurrent transaction won: apply the same export again now, deciding afresh.

    An IntegrityError counts only inside the applier's transaction, where the claims table's primary
    key is the last guard; the applier asks this question there and nowhere else.
    """
    if isinstance(exc, ClaimTaken | IntegrityError):
        return True
    return isinstance(exc, DBAPIError) and _sqlstate(exc) in _LOST_RACE_SQLSTATES


def is_transient(exc: BaseException) -> bool:
    """Whether doing the same work again later can succeed where this attempt failed."""
    if isinstance(exc, LocksBusy | RetryLater | ClaimTaken | RedisConnectionError | RedisTimeoutError | PoolTimeout):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, IntegrityError):
        return False  # escaped the applier's own retries: the same write would break the same constraint
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or _sqlstate(exc)[:2] in _TRANSIENT_SQLSTATE_CLASSES
    return False


def is_unavailable(exc: BaseException) -> bool:
    """Whether a dependency (the database, Redis, the pool) is down or full: 503, never 500."""
    return is_transient(exc) and not isinstance(exc, LocksBusy | RetryLater | ClaimTaken)
