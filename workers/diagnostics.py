"""Tasks that do nothing, on the exports queue: the ceilings an export's throughput is measured against.

`noop` is Celery's cost for one message on its own. `noop_batched` takes its messages exactly as
`apply_export` does (the same `ExportBatches` batcher and `export_batch_options`: batch size, wait,
pool, prefetch, one acknowledgement per message) and does nothing with them: what an export would
cost if applying it were free.
"""

from __future__ import annotations

from typing import Any

from shared.messaging import NOOP, NOOP_BATCHED
from shared.settings import Settings
from workers.batching import export_batch_options


def register(app: Any, settings: Settings) -> None:
    @app.task(name=NOOP, shared=False)
    def noop() -> None:
        """Costs only what Celery itself costs per message: receive, run, acknowledge."""

    @app.task(name=NOOP_BATCHED, **export_batch_options(settings))
    def noop_batched(requests: list[Any]) -> list[bool]:
        """Every message finished: the batcher acknowledges each one, as it does an applied export."""
        return [True] * len(requests)
