"""Send failed exports again: `syncguard failures retry` and the web report's retry buttons, one code.

Each kept message goes back through the producer as a fresh post bound to the tenant, so it is
validated and applied anew; the failure row stays until an export of the object applies (the
applier clears it), and one failing again counts another attempt. A kept message naming another
tenant is refused again and stays this tenant's failure, never sent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

from celery import Celery

from shared.exports.failures import retry_messages
from shared.exports.producer import PostResult, post_exports
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class Retried:
    """What a retry did: how many kept messages it read, and the post that sent them."""

    found: int
    sent: PostResult


class _Counted:
    """The messages as they stream to the producer, counted on the way."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            self.count += 1
            yield line


def retry_failed_exports(
    settings: Settings,
    tenant: str,
    *,
    source_anchor: str | None = None,
    failure_ids: Collection[int] | None = None,
    app: Celery | None = None,
) -> Retried:
    """Post the kept messages of the tenant's failed exports again (all, one object's, or those rows).

    Raises `PostInterrupted` when the broker fails part-way, like any post.
    """
    counted = _Counted(retry_messages(settings.database_url, tenant, source_anchor, failure_ids=failure_ids))
    sent = post_exports(counted, settings, app, tenant=tenant)
    return Retried(counted.count, sent)
