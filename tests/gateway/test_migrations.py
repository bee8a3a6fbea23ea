"""The Alembic migrations build exactly the schema the table definitions describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import gateway.store.tables  # noqa: F401  (the FHIR store's tables)
import smart_auth.tables  # noqa: F401  (the authorization server's tables)


def test_migrations__leave_nothing_for_autogenerate_to_add(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []
