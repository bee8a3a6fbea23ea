"""The authorization-code grant end to end: code → token, PKCE, replay, id_token, refresh.

reference/smart.md §5 rows 5, 6, 7, 9, 10.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import update

from smart_auth.tables import code_table, token_table
from tests.conftest import BASE_URL
from tests.smart_auth.conftest import (
    API_BASE,
    APP_LAUNCH,
    APP_REDIRECT,
    APP_SECRET,
    FHIR_BASE,
    HOSPITAL,
)
from tests.smart_auth.flows import (
    ASSERTION_TYPE,
    assertion,
    authorize,
    authorize_params,
    bearer,
    consent,
    pkce,
    query_of,
    redeem,
    signed_in,
    user_token,
)

OFFLINE = "launch/patient openid fhirUser offline_access patient/Task.rs patient/Patient.rs"


def _refresh(client, refresh_token: str, client_id: str = "patient-app", **extra: str):
    return client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            **extra,
        },
    )


def test_standalone_launch__picked_patient_is_the_token_context(client) -> None:
    code, verifier, _ = authorize(client, patient="Patient/p2")
    response = redeem(client, code, verifier)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "launch/patient openid fhirUser patient/Task.rs"
    assert body["patient"] == "p2"  # a bare id, per SMART
    assert body["need_patient_banner"] is True
    assert body["smart_style_url"] == f"{BASE_URL}/auth/smart-style.json"
    assert "refresh_token" not in body  # no offline_access asked
    me = client.get("/fhir/whoami", headers=bearer(body["access_token"])).json()
    assert me == {
        "organization": HOSPITAL,
        "user": "Practitioner/pr-1",
        "client_id": "patient-app",
        "patient": "Patient/p2",
        "roles": ["clinician"],
        "grants": [["patient", "Task", "rs", []]],
    }


def test_authorize__unregistered_scopes_are_dropped_from_the_grant(client) -> None:
    body = user_token(
        client,
        scope="launch/patient patient/Task.rs patient/Consent.cruds user/*.cruds system/Task.rs",
    )
    assert body["scope"] == "launch/patient patient/Task.rs"
    grants = client.get("/fhir/whoami", headers=bearer(body["access_token"])).json()["grants"]
    assert grants == [["patient", "Task", "rs", []]]


def test_ehr_launch__context_reaches_the_token_response(client) -> None:
    signed_in(client)
    launched = client.get(
        "/app/launch/patient-app",
        params={
            "patient": "Patient/p1",
            "encounter": "Encounter/e1",
            "context": "ServiceRequest/sr-1",
        },
    )
    location = launched.headers["location"]
    assert location.startswith(APP_LAUNCH)
    launch = query_of(location)["launch"]
    verifier, challenge = pkce()
    params = authorize_params(
        scope="launch openid fhirUser patient/Task.rs",
        launch=launch,
        code_challenge=challenge,
        aud=query_of(location)["iss"],
    )
    page = client.get("/auth/authorize", params=params)
    code = query_of(consent(client, page).headers["location"])["code"]
    body = redeem(client, code, verifier).json()
    assert body["patient"] == "p1"
    assert body["encounter"] == "e1"
    assert body["fhirContext"] == [{"reference": "ServiceRequest/sr-1"}]
    me = client.get("/fhir/whoami", headers=bearer(body["access_token"])).json()
    assert me["patient"] == "Patient/p1"


def test_id_token__verifies_against_our_jwks_and_carries_absolute_fhir_user(client) -> None:
    code, verifier, _params = authorize(client, nonce="n-123")
    body = redeem(client, code, verifier).json()
    jwks = client.get("/.well-known/jwks.json").json()
    assert all("d" not in key for key in jwks["keys"])
    token = jwt.decode(body["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert token.header["alg"] == "RS256"
    claims = token.claims
    assert claims["iss"] == BASE_URL
    assert claims["aud"] == "patient-app"
    assert claims["sub"] == "clinician"
    assert claims["nonce"] == "n-123"
    assert claims["fhirUser"] == f"{FHIR_BASE}/Practitioner/pr-1"
    assert claims["exp"] > time.time()
    assert client.get("/.well-known/openid-configuration").json()["issuer"] == claims["iss"]


def test_id_token__is_not_an_access_token(client) -> None:
    body = user_token(client)
    response = client.get("/fhir/whoami", headers=bearer(body["id_token"]))
    assert response.status_code == 401


def test_pkce__verifier_required_and_checked(client) -> None:
    code, verifier, _ = authorize(client)
    missing = redeem(client, code, None)
    assert missing.json()["error"] == "invalid_request"
    wrong = redeem(client, code, pkce()[0])
    assert wrong.json()["error"] == "invalid_grant"
    malformed = redeem(client, code, "short")
    assert malformed.json()["error"] == "invalid_request"
    # failed attempts do not use the code up
    assert redeem(client, code, verifier).status_code == 200


def test_pkce__required_of_confidential_clients_too(client) -> None:
    code, _, _ = authorize(client, client_id="secret-app")
    response = client.post(
        "/auth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT},
        auth=("secret-app", APP_SECRET),
    )
    assert response.json()["error"] == "invalid_request"


def test_code__reuse_fails_and_revokes_the_first_token(client) -> None:
    code, verifier, _ = authorize(client, scope=OFFLINE)
    first = redeem(client, code, verifier).json()
    assert client.get("/fhir/whoami", headers=bearer(first["access_token"])).status_code == 200
    replay = redeem(client, code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert client.get("/fhir/whoami", headers=bearer(first["access_token"])).status_code == 401
    assert _refresh(client, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_code__expired_is_invalid_grant(client, engine) -> None:
    code, verifier, _ = authorize(client)
    with engine.begin() as connection:
        connection.execute(update(code_table).values(expires_at=int(time.time()) - 1))
    assert redeem(client, code, verifier).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri", [APP_REDIRECT + "/", APP_REDIRECT + "?x=1", "https://evil.example/callback"]
)
def test_code__redirect_uri_must_match(client, redirect_uri) -> None:
    code, verifier, _ = authorize(client)
    response = redeem(client, code, verifier, redirect_uri=redirect_uri)
    assert response.json()["error"] == "invalid_grant"


def test_code__is_bound_to_its_client(client) -> None:
    code, verifier, _ = authorize(client)
    stolen = client.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
        },
        auth=("secret-app", APP_SECRET),
    )
    assert stolen.json()["error"] == "invalid_grant"
    assert redeem(client, code, verifier).status_code == 200


def test_code__confidential_clients_must_authenticate(client, keys) -> None:
    code, verifier, _ = authorize(client, client_id="secret-app")
    unauthenticated = redeem(client, code, verifier, client_id="secret-app")
    assert unauthenticated.json()["error"] == "invalid_client"
    wrong = client.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
        },
        auth=("secret-app", "not-the-secret"),
    )
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Basic")
    right = client.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
        },
        auth=("secret-app", APP_SECRET),
    )
    assert right.status_code == 200


def test_code__asymmetric_app_authenticates_with_an_assertion(client, keys) -> None:
    code, verifier, _ = authorize(client, client_id="keyed-app")
    response = client.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(keys["app"], "keyed-app"),
        },
    )
    assert response.status_code == 200, response.text


def test_code__api_audience_when_asked(client) -> None:
    code, verifier, _ = authorize(client)
    token = redeem(client, code, verifier, resource=API_BASE).json()["access_token"]
    assert client.get("/api/v1/whoami", headers=bearer(token)).status_code == 200
    assert client.get("/fhir/whoami", headers=bearer(token)).status_code == 401


# --- refresh (smart.md §5 #9, #10) ------------------------------------------------------------


def test_refresh__rotates_and_keeps_context(client) -> None:
    first = user_token(client, scope=OFFLINE)
    assert "refresh_token" in first
    second = _refresh(client, first["refresh_token"])
    assert second.status_code == 200
    assert second.headers["cache-control"] == "no-store"
    body = second.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["patient"] == first["patient"]
    assert body["scope"] == OFFLINE
    assert "id_token" not in body
    me = client.get("/fhir/whoami", headers=bearer(body["access_token"])).json()
    assert me["patient"] == "Patient/p1"


def test_refresh__reuse_kills_the_whole_family(client) -> None:
    first = user_token(client, scope=OFFLINE)
    second = _refresh(client, first["refresh_token"]).json()
    reuse = _refresh(client, first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    for token in (first["access_token"], second["access_token"]):
        assert client.get("/fhir/whoami", headers=bearer(token)).status_code == 401
    assert _refresh(client, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh__narrower_scope_is_allowed(client) -> None:
    first = user_token(client, scope=OFFLINE)
    narrower = _refresh(client, first["refresh_token"], scope="patient/Task.r offline_access")
    assert narrower.status_code == 200, narrower.text
    body = narrower.json()
    assert body["scope"] == "patient/Task.r offline_access"
    grants = client.get("/fhir/whoami", headers=bearer(body["access_token"])).json()["grants"]
    assert grants == [["patient", "Task", "r", []]]


@pytest.mark.parametrize(
    "scope",
    [
        OFFLINE + " patient/Task.cruds",
        "patient/Task.rs user/Task.rs",
        "patient/*.rs",
        "patient/Task.rs?status=requested patient/Observation.rs",
    ],
)
def test_refresh__wider_scope_is_invalid_scope(client, scope) -> None:
    first = user_token(client, scope=OFFLINE)
    response = _refresh(client, first["refresh_token"], scope=scope)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    # the refused attempt did not use the refresh token up
    assert _refresh(client, first["refresh_token"]).status_code == 200


def test_refresh__constraint_narrowing_is_allowed(client) -> None:
    first = user_token(client, scope=OFFLINE)
    response = _refresh(client, first["refresh_token"], scope="patient/Task.rs?status=requested")
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    grants = client.get("/fhir/whoami", headers=bearer(token)).json()["grants"]
    assert grants == [["patient", "Task", "rs", [["status", "requested"]]]]


def test_refresh__is_bound_to_its_client(client) -> None:
    first = user_token(client, scope=OFFLINE)
    response = client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=("secret-app", APP_SECRET),
    )
    assert response.json()["error"] == "invalid_grant"
    assert _refresh(client, first["refresh_token"]).status_code == 200


def test_refresh__expired_refresh_token_is_invalid_grant(client, engine) -> None:
    first = user_token(client, scope=OFFLINE)
    with engine.begin() as connection:
        connection.execute(update(token_table).values(refresh_expires_at=int(time.time()) - 1))
    assert _refresh(client, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh__online_access_also_gets_one(client) -> None:
    body = user_token(client, scope="launch/patient online_access patient/Task.rs")
    assert "refresh_token" in body


def test_refresh__backend_token_cannot_be_used_as_refresh(client, keys) -> None:
    response = client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "anything",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(keys["hospital"], "hospital-ehr"),
        },
    )
    assert response.json()["error"] == "unauthorized_client"


def test_token__unsupported_grant_type(client) -> None:
    response = client.post("/auth/token", data={"grant_type": "password", "client_id": "x"})
    assert response.json()["error"] == "unsupported_grant_type"
    assert response.headers["cache-control"] == "no-store"


def test_token__json_body_is_refused(client) -> None:
    response = client.post("/auth/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_token__duplicated_parameter_is_refused(client) -> None:
    response = client.post(
        "/auth/token",
        content="grant_type=authorization_code&code=a&code=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.json()["error"] == "invalid_request"


def test_token__cors_for_registered_app_origins_only(client) -> None:
    good = client.post(
        "/auth/token", data={"grant_type": "x"}, headers={"Origin": "https://app.example"}
    )
    assert good.headers["access-control-allow-origin"] == "https://app.example"
    bad = client.post(
        "/auth/token", data={"grant_type": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in bad.headers
    preflight = client.options("/auth/token", headers={"Origin": "https://app.example"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"


def test_code__concurrent_redemptions_issue_at_most_one_token(client, smart_app) -> None:
    code, verifier, _ = authorize(client)
    barrier = threading.Barrier(4)

    def redeem_in_parallel(_: int) -> int:
        with TestClient(smart_app[0], base_url=BASE_URL) as own:
            barrier.wait()
            return redeem(own, code, verifier).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(redeem_in_parallel, range(4)))
    assert statuses.count(200) <= 1
    assert all(status in (200, 400) for status in statuses)
