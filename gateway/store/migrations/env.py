"""Alembic environment: migrate the connection ``gateway.store.migrate`` hands in.

Migrations hold a lock for their whole run (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
PostgreSQL), so several Loopgate processes starting together migrate once, one after another.
"""

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

# imported to register their tables on SQLModel.metadata
import gateway.email.tables
import gateway.live.tables
import gateway.partners.tables
import gateway.store.tables
import gateway.subscriptions.tables  # noqa: F401
import smart_auth.tables  # noqa: F401

MIGRATION_LOCK_KEY = 7_302_145_001

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.run_migrations()
