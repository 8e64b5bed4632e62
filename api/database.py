"""One database transaction per request, on the database of the settings the app was built with."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from shared.store.engine import transaction


def db_session(request: Request) -> Iterator[Session]:
    with transaction(request.app.state.services.settings.database_url) as session:
        yield session
