"""Provisioning users and clients: validation with field paths, idempotency, hashed secrets."""

import copy

import pytest
from sqlalchemy import select

from smart_auth import ProvisioningError
from smart_auth.tables import client_table, user_table
from tests.smart_auth.conftest import APP_SECRET, clients, public_jwks, users
from tests.smart_auth.flows import assertion, backend_token


def _rows(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for table in (user_table, client_table)
            for row in connection.execute(select(table).order_by(*table.primary_key.columns))
        ]


def test_provision__twice_changes_nothing(smart, engine, keys) -> None:
    before = _rows(engine)
    smart.provision(users=users(), clients=clients(keys))
    assert _rows(engine) == before


def test_provision__changed_values_update_rows(smart, engine, keys, client) -> None:
    changed = clients(keys)
    changed[0]["scope"] = "system/Task.rs"
    changed[0]["organization"] = "Organization/other-hospital"
    people = users()
    people[0]["password"] = "a brand new passphrase"
    smart.provision(users=people, clients=changed)
    with engine.connect() as connection:
        row = connection.execute(
            select(client_table).where(client_table.c.client_id == "hospital-ehr")
        ).one()
    assert row.scope == "system/Task.rs"
    assert row.organization == "Organization/other-hospital"
    response = backend_token(client, assertion(keys["hospital"], "hospital-ehr"), "system/Task.rus")
    assert response.json()["error"] == "invalid_scope"


def test_provision__secrets_are_hashed(smart, engine) -> None:
    with engine.connect() as connection:
        user = connection.execute(select(user_table).limit(1)).one()
        app = connection.execute(
            select(client_table).where(client_table.c.client_id == "secret-app")
        ).one()
    assert user.password_hash.startswith("$argon2id$")
    assert app.secret_hash.startswith("$argon2id$")
    assert APP_SECRET not in app.secret_hash


def _one_client(**fields) -> dict:
    client = {
        "client_id": "c1",
        "type": "backend",
        "jwks_uri": "https://c1.example/jwks.json",
        "scope": "system/Task.rs",
        "organization": "Organization/o1",
    }
    client.update(fields)
    return {name: value for name, value in client.items() if value is not None}


@pytest.mark.parametrize(
    ("users_", "clients_", "message"),
    [
        ([], [_one_client(jwks_uri="http://c1.example/jwks")], "clients[0].jwks_uri: https"),
        (
            [],
            [_one_client(), _one_client(client_id="c2", jwks_uri="http://evil.example/")],
            "clients[1].jwks_uri: https is required unless loopback",
        ),
        ([], [_one_client(type="robot")], "clients[0].type"),
        ([], [_one_client(organization=None)], "clients[0].organization"),
        ([], [_one_client(scope="system/Task.dus")], "clients[0].scope"),
        ([], [_one_client(scope="patient/Task.rs")], "clients[0].scope"),
        ([], [_one_client(jwks={"keys": []})], "clients[0].jwks"),
        ([], [_one_client(client_secret="x" * 40)], "clients[0].client_secret"),
        ([], [_one_client(unknown="x")], "clients[0].unknown"),
        ([], [_one_client(), _one_client()], "clients[1].client_id: duplicate"),
        (
            [],
            [_one_client(type="public", jwks_uri=None, redirect_uris=["http://app.example/cb"])],
            "clients[0].redirect_uris[0]",
        ),
        (
            [],
            [_one_client(type="public", jwks_uri=None, redirect_uris=[])],
            "clients[0].redirect_uris",
        ),
        (
            [],
            [
                _one_client(
                    type="confidential-symmetric",
                    jwks_uri=None,
                    client_secret="short",
                    redirect_uris=["https://a.example/cb"],
                )
            ],
            "clients[0].client_secret",
        ),
        (
            [],
            [
                _one_client(
                    type="public",
                    jwks_uri=None,
                    redirect_uris=["https://a.example/cb"],
                    launch_uri="http://a.example/launch",
                )
            ],
            "clients[0].launch_uri",
        ),
        ([{"username": "u"}], [], "users[0].password"),
        (
            [
                {
                    "username": "u",
                    "password": "long enough pass",
                    "fhir_user": "Organization/x",
                    "organization": "Organization/o",
                }
            ],
            [],
            "users[0].fhir_user",
        ),
        (
            [
                {
                    "username": "u",
                    "password": "long enough pass",
                    "fhir_user": "Practitioner/x",
                    "organization": "Organization/o",
                    "roles": ["superuser"],
                }
            ],
            [],
            "users[0].roles[0]",
        ),
    ],
)
def test_provision__first_bad_field_is_named(smart, users_, clients_, message) -> None:
    with pytest.raises(ProvisioningError) as raised:
        smart.provision(users=users_, clients=clients_)
    assert str(raised.value).startswith(message), str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_provision__errors_never_quote_secrets(smart) -> None:
    client = _one_client(
        type="confidential-symmetric",
        jwks_uri=None,
        client_secret="TOPSECRET" * 5,
        redirect_uris=["ftp://x"],
    )
    with pytest.raises(ProvisioningError) as raised:
        smart.provision(users=[], clients=[client])
    assert "TOPSECRET" not in str(raised.value)


def test_provision__loopback_http_is_allowed(smart) -> None:
    smart.provision(
        users=[],
        clients=[
            _one_client(jwks_uri="http://127.0.0.1:9999/jwks.json"),
            _one_client(
                client_id="local-app",
                type="public",
                jwks_uri=None,
                redirect_uris=["http://localhost:3000/cb", "http://[::1]:3000/cb"],
                launch_uri="http://127.0.0.1:3000/launch",
                scope="launch openid patient/*.rs",
                organization=None,
            ),
        ],
    )


def test_provision__inline_jwks_must_hold_public_keys(smart, keys) -> None:
    private = {"keys": [dict(keys["hospital"].as_dict(private=True))]}
    with pytest.raises(ProvisioningError, match=r"^clients\[0\]\.jwks: keys must be public"):
        smart.provision(users=[], clients=[_one_client(jwks_uri=None, jwks=private)])
    twins = copy.deepcopy(public_jwks(keys["hospital"], keys["attacker"]))  # same kid
    with pytest.raises(ProvisioningError, match=r"^clients\[0\]\.jwks: kid values must be unique"):
        smart.provision(users=[], clients=[_one_client(jwks_uri=None, jwks=twins)])


def test_provision__nothing_is_written_when_one_entry_is_bad(smart, engine) -> None:
    before = _rows(engine)
    with pytest.raises(ProvisioningError):
        smart.provision(users=[], clients=[_one_client(), _one_client(client_id="c2", type="x")])
    assert _rows(engine) == before
