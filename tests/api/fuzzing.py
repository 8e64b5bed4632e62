"""What every schemathesis run of ours shares: a fixed number of examples an operation, reproducible
(derandomized, no example database), no deadline (a write waits for the workers) and no health check
(the services, not the strategies, are what is under test)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
