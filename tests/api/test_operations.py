"""/healthz and /metrics: what an operator's load balancer and Prometheus read."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from shared.metrics import activity
from tests.api.conftest import TenantAccess, running_api
from tests.api.scenario import post, post_and_wait
from tests.conftest import export_line
from tests.services import TEST_REDIS_URL

pytestmark = pytest.mark.integration


def scrape(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_healthz_checks_database_and_redis(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_metrics_count_applied_exports_open_quarantines_and_failures_by_code(
    client: httpx.Client, redis_client: Redis, access: TenantAccess, workers: object
) -> None:
    before = scrape(client)
    name = access.name
    posted = post_and_wait(
        client,
        redis_client,
        access,
        [export_line(name, "holder", displayName="H", userPrincipalName="same@contoso.com")],
    )
    assert posted["outcomes"] == {"applied": 1}
    post_and_wait(
        client,
        redis_client,
        access,
        [export_line(name, "waiter", displayName="W", userPrincipalName="same@contoso.com")],
    )
    post(client, access, [export_line(name, "bad", "Group", userPrincipalName="g@contoso.com")])
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert grew("syncguard_exports_total", outcome="applied") >= 2
    assert grew("syncguard_quarantines_open", property_name="UserPrincipalName") >= 1
    assert grew("syncguard_failed_exports", error_code="DataValidationFailed") >= 1
    assert grew("syncguard_directory_objects", object_type="User") >= 2
    assert {labels for (metric, labels) in after if metric == "syncguard_queue_depth"} == {
        (("queue", "exports"),),
        (("queue", "releases"),),
        (("queue", "maintenance"),),
    }


def test_quarantine_totals_come_from_the_workers_counters_in_redis(client: httpx.Client, redis_client: Redis) -> None:
    before = scrape(client)
    activity.count_quarantines(redis_client, opened=3, released=2)
    after = scrape(client)
    assert after[("syncguard_quarantines_opened_total", ())] - before[("syncguard_quarantines_opened_total", ())] == 3
    assert (
        after[("syncguard_quarantines_released_total", ())] - before[("syncguard_quarantines_released_total", ())] == 2
    )


def test_queue_depth_counts_the_messages_waiting_on_the_broker(database: str) -> None:
    """On a broker database no worker reads, so the messages stay put while we look."""
    idle_broker = TEST_REDIS_URL.rsplit("/", 1)[0] + "/8"  # a database no other test uses
    broker = Redis.from_url(idle_broker)
    broker.delete("exports", "releases")
    broker.rpush("exports", b"one", b"two", b"three")
    try:
        with running_api(CELERY_BROKER_URL=idle_broker) as server, httpx.Client(base_url=server.url) as http:
            depth = {labels: value for (name, labels), value in scrape(http).items() if name == "syncguard_queue_depth"}
        assert depth == {(("queue", "exports"),): 3, (("queue", "releases"),): 0, (("queue", "maintenance"),): 0}
    finally:
        broker.delete("exports")
