"""Issue 3 "done when", end to end with real SMART flows against the whole Loopgate app.

Backend clients get tokens with signed client assertions at /auth/token; a public app does the
standalone launch (login, patient picker, consent, PKCE) and the EHR launch from /app/launch.
"""

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.settings import Settings
from tests.builders import (
    CBO,
    HOSPITAL,
    OTHER_CBO,
    network,
    procedure,
    resulting_activity,
    service_request,
    task,
)
from tests.conftest import BASE_URL, FHIR_BASE, store_signing_key
from tests.gateway.test_bundles import referral_transaction
from tests.smart_auth.conftest import PASSWORD, public_jwks
from tests.smart_auth.flows import (
    assertion,
    backend_token,
    consent,
    form_posting_to,
    pkce,
    query_of,
    sign_in,
)

APP_REDIRECT = "http://127.0.0.1:9999/callback"
APP_LAUNCH = "http://127.0.0.1:9999/launch"
ORGS = {"hospital-ehr": HOSPITAL, "food-bank-system": CBO, "housing-system": OTHER_CBO}


@pytest.fixture(scope="module")
def client_keys() -> dict[str, RSAKey]:
    return {
        client_id: RSAKey.generate_key(2048, parameters={"kid": client_id}, private=True)
        for client_id in ORGS
    }


@pytest.fixture
def app(
    settings: Settings, engine: Engine, signing_key: dict[str, Any], client_keys: dict[str, RSAKey]
) -> FastAPI:
    store_signing_key(engine, signing_key)
    app = create_app(settings, engine=engine)
    app.state.smart.provision(
        users=[
            {
                "username": "dr.okafor",
                "password": PASSWORD,
                "roles": ["clinician"],
                "fhir_user": "Practitioner/dr-okafor",
                "organization": HOSPITAL,
            }
        ],
        clients=[
            *(
                {
                    "client_id": client_id,
                    "type": "backend",
                    "jwks": public_jwks(key),
                    "scope": "system/*.cruds",
                    "organization": ORGS[client_id],
                }
                for client_id, key in client_keys.items()
            ),
            {
                "client_id": "referral-viewer",
                "type": "public",
                "redirect_uris": [APP_REDIRECT],
                "launch_uri": APP_LAUNCH,
                "scope": "launch launch/patient openid fhirUser patient/Task.rs patient/Patient.rs",
            },
        ],
    )
    return app


@pytest.fixture
def web(app: FastAPI) -> Any:
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as test_client:
        yield test_client


def _backend(web: TestClient, keys: dict[str, RSAKey], client_id: str) -> dict[str, str]:
    signed = assertion(keys[client_id], client_id, aud=f"{BASE_URL}/auth/token")
    response = backend_token(web, signed, scope="system/*.cruds")
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()
    return {
        "Authorization": f"Bearer {response.json()['access_token']}",
        "Content-Type": "application/fhir+json",
    }


def _app_token(
    web: TestClient, *, launch: str | None = None, patient: str | None = None
) -> dict[str, Any]:
    """The referral-viewer app's authorization code flow; the browser is ``web``."""
    verifier, challenge = pkce()
    scope = "openid fhirUser patient/Task.rs " + ("launch" if launch else "launch/patient")
    params = {
        "response_type": "code",
        "client_id": "referral-viewer",
        "redirect_uri": APP_REDIRECT,
        "scope": scope,
        "state": "s" * 32,
        "aud": FHIR_BASE,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if launch:
        params["launch"] = launch
    page = web.get("/auth/authorize", params=params)
    if 'action="/auth/login"' in page.text:
        assert sign_in(web, page, "dr.okafor").status_code == 303
        page = web.get("/auth/authorize", params=params)
    assert page.status_code == 200, page.text
    if patient is not None:
        assert patient in form_posting_to(page.text, "/auth/consent")["options"]
    answer = consent(web, page, patient=patient)
    code = query_of(answer.headers["location"])["code"]
    token = web.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "client_id": "referral-viewer",
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text
    return dict(token.json())


def test_done_when__backend_clients_run_the_loop_and_a_stranger_sees_nothing(
    web: TestClient, client_keys: dict[str, RSAKey]
) -> None:
    hospital = _backend(web, client_keys, "hospital-ehr")
    cbo = _backend(web, client_keys, "food-bank-system")
    stranger = _backend(web, client_keys, "housing-system")
    for resource in network():
        web.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=hospital
        )
    created = web.post("/fhir", json=referral_transaction(), headers=hospital)
    assert created.status_code == 200, created.text
    task_id = created.json()["entry"][0]["response"]["location"].split("/")[1]
    current = web.get(f"/fhir/Task/{task_id}", headers=cbo).json()
    sr_id = current["focus"]["reference"].split("/")[1]

    assert web.get(f"/fhir/Task/{task_id}", headers=stranger).status_code == 404
    assert web.get("/fhir/Task", headers=stranger).json()["total"] == 0
    accept = {**current, "status": "accepted"}
    assert web.put(f"/fhir/Task/{task_id}", json=accept, headers=stranger).status_code == 403

    current = web.put(f"/fhir/Task/{task_id}", json=accept, headers=cbo).json()
    done = procedure("proc-1", sr_id=sr_id)
    done["subject"] = current["for"]
    assert web.put("/fhir/Procedure/proc-1", json=done, headers=cbo).status_code == 201
    completed = web.put(
        f"/fhir/Task/{task_id}",
        headers=cbo,
        json={**current, "status": "completed", "output": [resulting_activity("proc-1")]},
    )
    assert completed.status_code == 200, completed.text

    seen = web.get(f"/fhir/Task?_id={task_id}&_include=Task:output", headers=hospital).json()
    assert {e["resource"]["resourceType"] for e in seen["entry"]} == {"Task", "Procedure"}
    assert web.get("/fhir/Procedure/proc-1", headers=stranger).status_code == 404


@pytest.fixture
def two_patients_tasks(web: TestClient, client_keys: dict[str, RSAKey]) -> None:
    hospital = _backend(web, client_keys, "hospital-ehr")
    for resource in [*network(), {"resourceType": "Patient", "id": "pat-2"}]:
        web.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=hospital
        )
    web.put("/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=hospital)
    web.put("/fhir/Task/t-rivera", json=task("t-rivera"), headers=hospital)
    web.put(
        "/fhir/Task/t-other",
        headers=hospital,
        json=task("t-other", **{"for": {"reference": "Patient/pat-2"}}),
    )


@pytest.mark.usefixtures("two_patients_tasks")
def test_done_when__standalone_launch_reads_only_the_picked_patients_tasks(
    web: TestClient,
) -> None:
    token = _app_token(web, patient="Patient/pat-1001")
    assert token["patient"] == "pat-1001"
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    tasks = web.get("/fhir/Task", headers=headers).json()
    assert [e["resource"]["id"] for e in tasks["entry"]] == ["t-rivera"]
    assert web.get("/fhir/Task/t-other", headers=headers).status_code == 404


@pytest.mark.usefixtures("two_patients_tasks")
def test_done_when__ehr_launch_from_loopgate_reads_only_the_launch_patients_tasks(
    web: TestClient,
) -> None:
    launch_page = web.get("/app/launch/referral-viewer", params={"patient": "Patient/pat-2"})
    if launch_page.status_code == 200:  # not signed in yet: log in, then the launch continues
        launch_page = sign_in(web, launch_page, "dr.okafor")
        while launch_page.status_code in (302, 303) and not launch_page.headers[
            "location"
        ].startswith(APP_LAUNCH):
            launch_page = web.get(launch_page.headers["location"])
    location = launch_page.headers["location"]
    assert location.startswith(APP_LAUNCH)
    launch = query_of(location)
    assert launch["iss"] == FHIR_BASE
    token = _app_token(web, launch=launch["launch"])
    assert token["patient"] == "pat-2"
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    tasks = web.get("/fhir/Task", headers=headers).json()
    assert [e["resource"]["id"] for e in tasks["entry"]] == ["t-other"]
