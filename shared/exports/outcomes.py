"""What applying one export (or one release) came to, as the worker acts on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["applied", "skipped", "failed", "released", "nothing-to-release"]


class RetryLater(Exception):
    """A transient obstacle (busy locks, a lost race at the UNIQUE guard): apply the whole export again."""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    tenant: str | None = None
    object_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    quarantined: tuple[str, ...] = ()
    freed_with_waiters: tuple[str, ...] = field(default=())
    newly_quarantined: int = 0
