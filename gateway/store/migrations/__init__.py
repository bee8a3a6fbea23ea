"""Alembic migrations of Loopgate's database (applied by ``gateway.store.migrate``)."""
