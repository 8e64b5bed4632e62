"""Alembic environment: the URL comes from syncguard's settings unless the caller set one."""

from __future__ import annotations

from alembic import context

from shared.store.engine import MIGRATIONS, get_engine
from shared.store.tables import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or None
engine = get_engine(url, MIGRATIONS)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
