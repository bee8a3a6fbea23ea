"""The Alembic migrations build exactly the schema the table definitions describe."""

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import gateway.store.tables  # noqa: F401  (the FHIR store's tables)
import smart_auth.tables  # noqa: F401  (the authorization server's tables)
from gateway.store.engine import make_engine, write_transaction
from gateway.store.migrate import alembic_config
from tests.conftest import own_postgres_database


def test_migrations__leave_nothing_for_autogenerate_to_add(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


@pytest.fixture
def fresh_engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the run's kind, of this test's own."""
    with ExitStack() as stack:
        if make_url(database_url).get_backend_name() == "sqlite":
            url = f"sqlite:///{tmp_path / 'fresh.db'}"
        else:
            url = stack.enter_context(own_postgres_database(database_url, "loopgate_migration"))
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    config = alembic_config()
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_migration_0010__gives_stored_tasks_their_last_updated(fresh_engine: Engine) -> None:
    """Tasks written before 0010 get their lastUpdated in task_party, so an inbox poll
    narrowed through the new index still finds them; 0010 also goes back down cleanly."""
    _migrate(fresh_engine, "0009")
    with write_transaction(fresh_engine) as connection:
        for task_id, updated in (("t-1", 1_700_000_000_000_001), ("t-2", 1_700_000_000_000_002)):
            connection.execute(
                text(
                    "INSERT INTO resource (resource_type, id, version_id, last_updated, deleted) "
                    "VALUES ('Task', :id, 1, :updated, false)"
                ),
                {"id": task_id, "updated": updated},
            )
            connection.execute(
                text(
                    "INSERT INTO task_party (task_id, owner_org, has_owner, status) "
                    "VALUES (:id, 'Organization/eastside-food-bank', true, 'requested')"
                ),
                {"id": task_id},
            )

    _migrate(fresh_engine, "heads")

    assert _task_party_column_at_head(fresh_engine, "last_updated") == {
        "t-1": 1_700_000_000_000_001,
        "t-2": 1_700_000_000_000_002,
    }
    _migrate(fresh_engine, "0009", down=True)
    assert "last_updated" not in _task_party_columns(fresh_engine)


def test_migration_0011__gives_stored_tasks_their_owner_reference(fresh_engine: Engine) -> None:
    """Tasks written before 0011 get their owner reference as written (a PractitionerRole
    stays one) from their ``owner`` index row, so the inbox index finds them by it; an
    external or missing owner leaves it empty. 0011 also goes back down cleanly."""
    _migrate(fresh_engine, "0010")
    owners = {
        "t-org": ("Organization", "eastside-food-bank", ""),
        "t-role": ("PractitionerRole", "food-intake", ""),
        "t-external": ("Organization", "456", "https://other.example.org/fhir"),
        "t-unowned": None,
    }
    with write_transaction(fresh_engine) as connection:
        for task_id, owner in owners.items():
            connection.execute(
                text(
                    "INSERT INTO task_party (task_id, owner_org, has_owner, status, last_updated)"
                    " VALUES (:id, 'Organization/eastside-food-bank', :owned, 'requested', 1)"
                ),
                {"id": task_id, "owned": owner is not None},
            )
            rows = [("focus", "ServiceRequest", "sr-1", "")]
            if owner is not None:
                rows.append(("owner", *owner))
            for param, target_type, target_id, target_base in rows:
                connection.execute(
                    text(
                        "INSERT INTO search_reference (resource_type, resource_id, param, "
                        "target_type, target_id, target_base) "
                        "VALUES ('Task', :id, :param, :type, :target, :base)"
                    ),
                    {
                        "id": task_id,
                        "param": param,
                        "type": target_type,
                        "target": target_id,
                        "base": target_base,
                    },
                )

    _migrate(fresh_engine, "heads")

    assert _task_party_column_at_head(fresh_engine, "owner_ref") == {
        "t-external": None,
        "t-org": "Organization/eastside-food-bank",
        "t-role": "PractitionerRole/food-intake",
        "t-unowned": None,
    }
    _migrate(fresh_engine, "0010", down=True)
    assert "owner_ref" not in _task_party_columns(fresh_engine)


def _task_party_column_at_head(engine: Engine, column: str) -> dict[str, Any]:
    """``column`` of each task_party row by task id, once the schema is exactly the tables'."""
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        rows = connection.execute(text(f"SELECT task_id, {column} FROM task_party")).all()
    assert differences == []
    return {row[0]: row[1] for row in rows}


def _task_party_columns(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {c["name"] for c in inspect(connection).get_columns("task_party")}
