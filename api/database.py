"""One database transaction per request, closed when the request is done."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.orm import Session

from shared.store.engine import transaction


def db_session() -> Iterator[Session]:
    with transaction() as session:
        yield session
