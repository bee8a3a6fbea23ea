"""Shared fixtures: a real database per test run (SQLite by default, PostgreSQL on request).

Set ``LOOPGATE_TEST_DATABASE_URL`` to a PostgreSQL server URL (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and the run creates its own
database there, migrates it with Alembic, and drops it at the end.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from gateway.app import create_app
from gateway.settings import Settings
from gateway.store.engine import make_engine, write_transaction
from gateway.store.migrate import upgrade_database
from smart_auth.tables import signing_key_table

BASE_URL = "http://127.0.0.1:8080"
FHIR_BASE = f"{BASE_URL}/fhir"
POSTGRES_SERVER = os.environ.get("LOOPGATE_TEST_DATABASE_URL", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if POSTGRES_SERVER:
        return
    skip = pytest.mark.skip(reason="PostgreSQL test: set LOOPGATE_TEST_DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@contextmanager
def own_postgres_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url``, dropped afterwards;
    yields its URL."""
    server = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not POSTGRES_SERVER:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'loopgate.db'}"
        return
    with own_postgres_database(POSTGRES_SERVER, "loopgate_test") as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _empty_database(request: pytest.FixtureRequest) -> None:
    """Every test starts from empty tables (schema kept), whatever the previous test wrote."""
    if "engine" not in request.fixturenames:
        return
    engine: Engine = request.getfixturevalue("engine")
    with write_transaction(engine) as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture(scope="session")
def signing_key() -> dict[str, Any]:
    """Our id_token key, made once per run and stored before each test's app starts, so
    ``ensure_keys`` finds it instead of generating an RSA key per test (test_discovery in
    tests/smart_auth covers the path where it has to create one)."""
    key = RSAKey.generate_key(
        2048, parameters={"kid": "test-signing-key", "alg": "RS256", "use": "sig"}, private=True
    )
    return dict(key.as_dict(private=True))


def store_signing_key(engine: Engine, key: dict[str, Any]) -> None:
    with engine.begin() as connection:
        if connection.execute(select(signing_key_table.c.kid)).first() is None:
            connection.execute(
                insert(signing_key_table).values(
                    kid=key["kid"], alg="RS256", private_jwk=key, created_at=0
                )
            )


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, public_url=BASE_URL, max_body_bytes=256 * 1024)


@pytest.fixture
def client(settings: Settings, engine: Engine, signing_key: dict[str, Any]) -> Iterator[TestClient]:
    """The app on the test database, with a fresh token per organization in builders.TOKENS."""
    from tests import builders
    from tests.tokens import mint

    store_signing_key(engine, signing_key)
    app = create_app(settings, engine=engine)
    with TestClient(app, base_url=BASE_URL) as test_client:
        builders.TOKENS.clear()
        for organization in (builders.HOSPITAL, builders.CBO, builders.OTHER_CBO):
            builders.TOKENS[organization] = mint(engine, organization=organization)
        builders.TOKENS[builders.ADMIN] = mint(
            engine,
            organization=builders.ADMIN_ORGANIZATION,
            roles=("admin",),
            fhir_user="Practitioner/network-admin",
            scope="user/*.cruds",
        )
        yield test_client
        builders.TOKENS.clear()
