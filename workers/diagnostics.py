"""A task that does nothing, on the exports queue: the ceiling an export's throughput is measured against."""

from __future__ import annotations

from shared.messaging import NOOP
from workers.app import app


@app.task(name=NOOP)
def noop() -> None:
    """Costs only what Celery itself costs per message: receive, run, acknowledge."""
