"""Introspection (RFC 7662 + SMART fields) and revocation (RFC 7009); smart.md §5 row 23."""

from tests.smart_auth.conftest import APP_SECRET, FHIR_BASE
from tests.smart_auth.flows import assertion, backend_token, bearer, user_token

OFFLINE = "launch/patient openid fhirUser offline_access patient/Task.rs"


def _backend_bearer(client, keys) -> str:
    return str(
        backend_token(client, assertion(keys["hospital"], "hospital-ehr")).json()["access_token"]
    )


def test_introspect__without_caller_authentication_is_401(client) -> None:
    body = user_token(client)
    response = client.post("/auth/introspect", data={"token": body["access_token"]})
    assert response.status_code == 401
    assert "Basic" in response.headers["www-authenticate"]
    assert "active" not in response.json()


def test_introspect__a_public_client_may_not_introspect(client) -> None:
    body = user_token(client)
    response = client.post(
        "/auth/introspect", data={"token": body["access_token"], "client_id": "patient-app"}
    )
    assert response.status_code == 401


def test_introspect__a_user_token_may_not_introspect(client) -> None:
    body = user_token(client)
    response = client.post(
        "/auth/introspect",
        data={"token": body["access_token"]},
        headers=bearer(body["access_token"]),
    )
    assert response.status_code == 401


def test_introspect__with_a_backend_bearer_token_reports_smart_fields(client, keys) -> None:
    body = user_token(client, scope=OFFLINE)
    response = client.post(
        "/auth/introspect",
        data={"token": body["access_token"]},
        headers=bearer(_backend_bearer(client, keys)),
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    info = response.json()
    assert info["active"] is True
    assert info["scope"] == OFFLINE
    assert info["client_id"] == "patient-app"
    assert info["exp"] > info["iat"]
    assert info["patient"] == "p1"
    assert info["fhirUser"] == f"{FHIR_BASE}/Practitioner/pr-1"
    assert info["iss"] == "http://127.0.0.1:8080"  # an id_token was issued
    assert info["sub"] == "clinician"
    assert info["aud"] == FHIR_BASE


def test_introspect__with_client_secret(client) -> None:
    body = user_token(client)
    response = client.post(
        "/auth/introspect", data={"token": body["access_token"]}, auth=("secret-app", APP_SECRET)
    )
    assert response.json()["active"] is True
    wrong = client.post(
        "/auth/introspect", data={"token": body["access_token"]}, auth=("secret-app", "nope")
    )
    assert wrong.status_code == 401


def test_introspect__unknown_revoked_and_backend_tokens(client, keys) -> None:
    caller = bearer(_backend_bearer(client, keys))
    unknown = client.post("/auth/introspect", data={"token": "nope"}, headers=caller)
    assert unknown.json() == {"active": False}
    backend = _backend_bearer(client, keys)
    info = client.post("/auth/introspect", data={"token": backend}, headers=caller).json()
    assert info["active"] is True
    assert info["client_id"] == "hospital-ehr"
    assert "iss" not in info
    assert "fhirUser" not in info
    assert "patient" not in info


def test_introspect__refresh_token(client, keys) -> None:
    body = user_token(client, scope=OFFLINE)
    caller = bearer(_backend_bearer(client, keys))
    info = client.post(
        "/auth/introspect", data={"token": body["refresh_token"]}, headers=caller
    ).json()
    assert info["active"] is True
    assert info["client_id"] == "patient-app"


def test_revoke__access_token_stops_working(client) -> None:
    body = user_token(client)
    response = client.post(
        "/auth/revoke", data={"token": body["access_token"], "client_id": "patient-app"}
    )
    assert response.status_code == 200
    assert client.get("/fhir/whoami", headers=bearer(body["access_token"])).status_code == 401


def test_revoke__refresh_token_ends_the_family(client) -> None:
    body = user_token(client, scope=OFFLINE)
    client.post("/auth/revoke", data={"token": body["refresh_token"], "client_id": "patient-app"})
    assert client.get("/fhir/whoami", headers=bearer(body["access_token"])).status_code == 401
    refresh = client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": "patient-app",
        },
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_revoke__another_clients_token_is_left_alone(client) -> None:
    body = user_token(client)
    response = client.post(
        "/auth/revoke", data={"token": body["access_token"]}, auth=("secret-app", APP_SECRET)
    )
    assert response.status_code == 200  # RFC 7009 §2.2: no hint either way
    assert client.get("/fhir/whoami", headers=bearer(body["access_token"])).status_code == 200


def test_revoke__backend_token_with_an_assertion(client, keys) -> None:
    token = _backend_bearer(client, keys)
    response = client.post(
        "/auth/revoke",
        data={
            "token": token,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(keys["hospital"], "hospital-ehr"),
        },
    )
    assert response.status_code == 200
    assert client.get("/fhir/whoami", headers=bearer(token)).status_code == 401


def test_revoke__unauthenticated_caller_is_refused(client) -> None:
    body = user_token(client)
    response = client.post("/auth/revoke", data={"token": body["access_token"]})
    assert response.json()["error"] == "invalid_client"
    assert client.get("/fhir/whoami", headers=bearer(body["access_token"])).status_code == 200
