"""The token lookup every API request makes runs on a bare pooled DB-API connection
(``smart_auth.db.first_row``): it hands the connection back as the pool's other users expect it,
sees revocations at once, and survives connections the database server dropped."""

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.exc import OperationalError

from gateway.settings import Settings
from gateway.store.engine import IDLE_PING_S, make_engine
from smart_auth.db import writing
from smart_auth.tables import token_table
from smart_auth.tokens import bearer_grant
from tests.tokens import mint

HOSPITAL = "Organization/mercy-hospital"


@pytest.fixture
def pool(settings: Settings, engine: Engine) -> Iterator[Engine]:
    """An engine of its own on the test database (``engine`` keeps it migrated and empty)."""
    own = make_engine(settings.database_url, pool_size=1)
    yield own
    own.dispose()


def test_a_token_is_found_with_its_grant_and_an_unknown_one_is_not(pool: Engine) -> None:
    token = mint(pool, organization=HOSPITAL, patient="Patient/p-1", roles=("nurse",))

    grant = bearer_grant(pool, token)

    assert grant is not None
    assert (grant.organization, grant.context, grant.roles) == (
        HOSPITAL,
        {"patient": "p-1"},
        ["nurse"],
    )
    assert grant.revoked_at is None
    assert bearer_grant(pool, token + "x") is None


def test_after_a_lookup__its_connection_still_rolls_back_a_failed_write(pool: Engine) -> None:
    token = mint(pool, organization=HOSPITAL)
    assert bearer_grant(pool, token) is not None  # the pool's one connection, used bare

    with pytest.raises(RuntimeError):
        _revoke_all_then_fail(pool)

    grant = bearer_grant(pool, token)
    assert grant is not None
    assert grant.revoked_at is None


def test_a_revocation_is_seen_by_the_next_lookup(pool: Engine) -> None:
    token = mint(pool, organization=HOSPITAL)
    assert bearer_grant(pool, token) is not None

    with writing(pool) as connection:
        connection.execute(update(token_table).values(revoked_at=1))

    grant = bearer_grant(pool, token)
    assert grant is not None
    assert grant.revoked_at == 1


@pytest.mark.postgres
def test_a_lookup_on_an_idle_connection_the_server_dropped__is_answered(
    pool: Engine, engine: Engine
) -> None:
    token = mint(pool, organization=HOSPITAL)
    _terminate_backends_of(pool, engine)
    time.sleep(IDLE_PING_S + 0.2)

    assert bearer_grant(pool, token) is not None


@pytest.mark.postgres
def test_a_lookup_on_a_connection_dropped_while_busy__fails_once_then_the_pool_is_new(
    pool: Engine, engine: Engine
) -> None:
    token = mint(pool, organization=HOSPITAL)
    _terminate_backends_of(pool, engine)

    with pytest.raises(OperationalError) as failure:
        bearer_grant(pool, token)
    assert token not in str(failure.value)  # parameters hidden
    assert all(bearer_grant(pool, token) is not None for _ in range(3))


def _revoke_all_then_fail(pool: Engine) -> None:
    with writing(pool) as connection:
        connection.execute(update(token_table).values(revoked_at=1))
        raise RuntimeError("the write fails after its update")


def _terminate_backends_of(pool: Engine, engine: Engine) -> None:
    """Every connection ``pool`` holds is ended by the server, as a restart would."""
    with pool.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
