"""The contract between whoever enqueues work (producer, API, redelivery) and the Celery workers.

Task names, queue names and the routing table live here, once: both the workers' app and the
producer's app route by `TASK_ROUTES`, so no call site names a queue. `send_export` is the one way an
`apply_export` message is built and sent, by the producer, redelivery, a worker's retry and the tests.

Every `apply_export` message is bound to the tenant its sender is authorised for (the `tenant`
keyword argument, beside the export itself): the worker refuses an export that names another tenant
and files it as a failure of the bound tenant, so no path can write across tenants. A message from
an older version has no `tenant`: it is bound to the tenant it names, as before.
"""

from __future__ import annotations

from typing import Any, Protocol

APPLY_EXPORT = "syncguard.apply_export"
RELEASE_VALUES = "syncguard.release_values"
RELEASE_RESOLVED_CONFLICTS = "syncguard.release_resolved_conflicts"
SEND_ERROR_REPORTS = "syncguard.send_error_reports"
REDELIVER_STRANDED_EXPORTS = "syncguard.redeliver_stranded_exports"
NOOP = "syncguard.noop"
NOOP_BATCHED = "syncguard.noop_batched"

EXPORTS_QUEUE = "exports"
RELEASES_QUEUE = "releases"
MAINTENANCE_QUEUE = "maintenance"
QUEUES = (EXPORTS_QUEUE, RELEASES_QUEUE, MAINTENANCE_QUEUE)

# The no-ops share the exports queue: they are the ceilings an export's throughput is measured against.
TASK_ROUTES: dict[str, dict[str, str]] = {
    APPLY_EXPORT: {"queue": EXPORTS_QUEUE},
    NOOP: {"queue": EXPORTS_QUEUE},
    NOOP_BATCHED: {"queue": EXPORTS_QUEUE},
    RELEASE_VALUES: {"queue": RELEASES_QUEUE},
    RELEASE_RESOLVED_CONFLICTS: {"queue": MAINTENANCE_QUEUE},
    SEND_ERROR_REPORTS: {"queue": MAINTENANCE_QUEUE},
    REDELIVER_STRANDED_EXPORTS: {"queue": MAINTENANCE_QUEUE},
}


class Sender(Protocol):
    """What sending needs of a Celery app (typed here because Celery ships no type information)."""

    def send_task(self, name: str, *args: Any, **options: Any) -> Any: ...


def export_kwargs(
    message: Any, batch: str | None = None, index: int | None = None, *, tenant: str | None
) -> dict[str, Any]:
    """An `apply_export` message's keyword arguments: the export itself, where its post tracks it, and
    the tenant it is bound to (None: bound to the tenant it names, for a sender that may write any)."""
    return {"message": message, "batch": batch, "index": index, "tenant": tenant}


def send_export(
    app: Sender,
    message: Any,
    *,
    tenant: str | None,
    batch: str | None = None,
    index: int | None = None,
    producer: Any = None,
    task_id: str | None = None,
    retries: int = 0,
    countdown: float | None = None,
) -> None:
    """Enqueue one export, bound to `tenant`: the tenant the sender is authorised for, which the
    export must name. None binds it to whatever tenant it names: only for a sender that may write
    every tenant and sends what it was given as is (the tests' raw messages).
    `batch` and `index` file it in a post's ledger (`post --wait` counts it); `task_id` and `retries`
    make it the retry of an earlier delivery, as `Task.retry` would."""
    options: dict[str, Any] = {}
    if producer is not None:
        options["producer"] = producer
    if task_id is not None:
        options["task_id"] = task_id
    if retries:
        options["retries"] = retries
    if countdown is not None:
        options["countdown"] = countdown
    app.send_task(
        APPLY_EXPORT,
        kwargs=export_kwargs(message, batch, index, tenant=tenant),
        argsrepr="()",
        kwargsrepr=_export_repr(message),
        **options,
    )


def _export_repr(message: Any) -> str:
    """What a task's listing (events, Flower, the worker's log) shows of an export: who it is.

    Celery builds it with `saferepr` of the whole keyword arguments otherwise, ~13 % of the
    producer's time on 1.5 KB exports, for a string nobody reads past the object's name."""
    if not isinstance(message, dict):
        return f"<{type(message).__name__}>"
    keys = ("tenant", "objectClass", "sourceAnchor", "operation", "sequence")
    return "{" + ", ".join(f"{key}={str(message.get(key))[:80]}" for key in keys if key in message) + "}"


def send_release(app: Sender, tenant: str, keys: list[str]) -> None:
    """The fast path: give `keys` (freed by a commit) to their waiters now, not at the next sweep."""
    app.send_task(RELEASE_VALUES, args=(tenant, keys))


def send_sweep(app: Sender, tenant: str | None = None, cursor: list[Any] | None = None) -> None:
    """A release sweep of one tenant (or all), from `cursor` on."""
    kwargs: dict[str, Any] = {"tenant": tenant}
    if cursor is not None:
        kwargs["cursor"] = cursor
    app.send_task(RELEASE_RESOLVED_CONFLICTS, kwargs=kwargs)
