"""Tenants by name, cached for a few seconds in each worker process."""

from __future__ import annotations

import time

from sqlalchemy import select

from shared.directory.objects import (
    TenantInfo,
)
from shared.store.engine import transaction
from shared.store.tables import Tenant


class TenantDirectory:
    """Tenants by name, cached for a few seconds per process.

    A feature only ever goes from off to on, so a stale entry can only claim a feature is still off:
    the legacy refusal, the one decision that depends on that, re-reads the features before it
    refuses (`store.current_features`). Unknown tenants are never cached.
    """

    def __init__(self, database_url: str, ttl_s: float = 2.0) -> None:
        self.database_url = database_url
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, TenantInfo]] = {}

    def forget(self, name: str) -> None:
        self._cache.pop(name, None)

    def get(self, name: str) -> TenantInfo | None:
        cached = self._cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        with transaction(self.database_url) as session:
            tenant = session.scalars(select(Tenant).where(Tenant.name == name)).first()
            info = None if tenant is None else TenantInfo.of(tenant)
        if info is not None:
            self._cache[name] = (time.monotonic(), info)
        return info
