"""SmartAuth.authenticate: the bearer check gateway calls on every protected route (RFC 6750)."""

import time

import pytest
from sqlalchemy import update

from smart_auth.tables import token_table
from tests.smart_auth.flows import assertion, backend_token, bearer, user_token

CHALLENGE = 'Bearer realm="loopgate"'
INVALID = 'Bearer realm="loopgate", error="invalid_token"'


@pytest.fixture
def token(client, keys) -> str:
    response = backend_token(client, assertion(keys["hospital"], "hospital-ehr"))
    return str(response.json()["access_token"])


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic Zm9vOmJhcg=="}])
def test_missing_token__401_with_a_bare_challenge(client, headers) -> None:
    response = client.get("/fhir/whoami", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE


def test_token_in_the_query_is_ignored(client, token) -> None:
    response = client.get("/fhir/whoami", params={"access_token": token})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE


@pytest.mark.parametrize("value", ["nope", "", "x" * 2000, "a b c"])
def test_unknown_token__401_invalid_token(client, value) -> None:
    response = client.get("/fhir/whoami", headers={"Authorization": f"Bearer {value}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID


def test_scheme_is_case_insensitive(client, token) -> None:
    assert (
        client.get("/fhir/whoami", headers={"Authorization": f"bearer {token}"}).status_code == 200
    )


def test_expired_token__401(client, token, engine) -> None:
    with engine.begin() as connection:
        connection.execute(update(token_table).values(expires_at=int(time.time()) - 1))
    response = client.get("/fhir/whoami", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID


def test_fhir_token_is_refused_on_the_api_audience(client, token) -> None:
    assert client.get("/fhir/whoami", headers=bearer(token)).status_code == 200
    response = client.get("/api/v1/whoami", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID


def test_refresh_token_is_not_an_access_token(client) -> None:
    body = user_token(client, scope="launch/patient offline_access patient/Task.rs")
    assert client.get("/fhir/whoami", headers=bearer(body["refresh_token"])).status_code == 401


def test_user_token__grants_with_constraints(client) -> None:
    scope = (
        "launch/patient patient/Observation.rs?category=http://terminology.hl7.org/"
        "CodeSystem/observation-category|social-history user/Task.rs"
    )
    body = user_token(client, scope=scope)
    assert body["scope"] == scope
    grants = client.get("/fhir/whoami", headers=bearer(body["access_token"])).json()["grants"]
    assert grants == [
        [
            "patient",
            "Observation",
            "rs",
            [
                [
                    "category",
                    "http://terminology.hl7.org/CodeSystem/observation-category|social-history",
                ]
            ],
        ],
        ["user", "Task", "rs", []],
    ]
