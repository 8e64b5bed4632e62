"""`/healthz` for load balancers and `/metrics` for Prometheus; neither needs a token nor names a tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from api import outages
from api.schemas import Health
from api.services import Services, services
from shared.messaging import QUEUES
from shared.metrics import activity
from shared.metrics.counts import service_counts
from shared.store.engine import transaction

router = APIRouter(tags=["operations"])

PROPERTY_NAMES = ("UserPrincipalName", "ProxyAddresses")
OBJECT_TYPES = ("User", "Group", "Contact")


@router.get(
    "/healthz",
    response_model=Health,
    summary="Database and Redis answer",
    responses={503: {"model": Health, "description": "The database or Redis does not answer."}},
)
def healthz(response: Response, found: Annotated[Services, Depends(services)]) -> Health:
    """Each field is "ok" or a fixed phrase (api/outages.py); the exception goes to the log, since its
    text names the servers and the database user."""
    database = redis = "ok"
    try:
        with transaction(found.settings.database_url) as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        database = outages.logged(outages.what_is_down(exc), exc, "/healthz")
    try:
        found.redis.ping()
    except Exception as exc:
        redis = outages.logged(outages.what_is_down(exc), exc, "/healthz")
    healthy = database == redis == "ok"
    if not healthy:
        response.status_code = 503
    return Health(status="ok" if healthy else "unavailable", database=database, redis=redis)


class ScrapeTimeCollector(Collector):
    """Reads every figure when Prometheus scrapes: totals from Redis, current counts from the database."""

    def __init__(self, found: Services) -> None:
        self.found = found

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        totals = activity.totals(self.found.redis)
        exports = CounterMetricFamily(
            "syncguard_exports", "Exports the workers finished, by outcome.", labels=["outcome"]
        )
        for outcome in sorted({"applied", "skipped", "failed", *totals.exports_by_outcome}):
            exports.add_metric([outcome], totals.exports_by_outcome.get(outcome, 0))
        yield exports
        yield CounterMetricFamily(
            "syncguard_quarantines_opened",
            "Values quarantined because another object held them.",
            value=totals.quarantines_opened,
        )
        yield CounterMetricFamily(
            "syncguard_quarantines_released",
            "Quarantined values handed to their waiter.",
            value=totals.quarantines_released,
        )
        with transaction(self.found.settings.database_url) as session:
            counts = service_counts(session)
        yield _gauge(
            "syncguard_quarantines_open",
            "Provisioning errors now open.",
            "property_name",
            counts.open_quarantines,
            PROPERTY_NAMES,
        )
        yield _gauge(
            "syncguard_failed_exports",
            "Failed exports now on record, by error code.",
            "error_code",
            counts.failed_exports,
            (),
        )
        yield _gauge(
            "syncguard_directory_objects", "Live directory objects.", "object_type", counts.live_objects, OBJECT_TYPES
        )
        depth = GaugeMetricFamily("syncguard_queue_depth", "Messages waiting in each broker queue.", labels=["queue"])
        if self.found.broker_redis is not None:
            with self.found.broker_redis.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    pipe.llen(queue)
                for queue, length in zip(QUEUES, pipe.execute(), strict=True):
                    depth.add_metric([queue], int(length))
        yield depth


def _gauge(
    name: str, documentation: str, label: str, values: dict[str, int], always: tuple[str, ...]
) -> GaugeMetricFamily:
    """Known label values are always present (as 0), so a dashboard never sees a series vanish."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key in sorted({*always, *values}):
        family.add_metric([key], values.get(key, 0))
    return family


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)
def metrics(found: Annotated[Services, Depends(services)]) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeTimeCollector(found))
    try:
        body = generate_latest(registry)
    except Exception as exc:  # a failed scrape is itself the signal; the log says why
        problem = outages.logged(outages.what_is_down(exc), exc, "/metrics")
        return Response(f"metrics unavailable: {problem}\n", status_code=503, media_type="text/plain")
    return Response(body, media_type=CONTENT_TYPE_LATEST)
