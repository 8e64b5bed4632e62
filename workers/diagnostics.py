"""A task that does nothing, on the exports queue: the ceiling an export's throughput is measured against."""

from __future__ import annotations

from typing import Any

from shared.messaging import NOOP


def register(app: Any) -> None:
    @app.task(name=NOOP, shared=False)
    def noop() -> None:
        """Costs only what Celery itself costs per message: receive, run, acknowledge."""
