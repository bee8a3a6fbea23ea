"""Every /fhir interaction checked against the bearer token: 401, 403 and 404 as issue 3 decides."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from smart_auth.tables import token_table
from tests.builders import (
    CBO,
    HOSPITAL,
    OTHER_CBO,
    as_org,
    bearer,
    create_referral,
    moved,
    seed_network,
    task,
)
from tests.conftest import BASE_URL
from tests.tokens import mint


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        ({"Authorization": "Bearer not-a-real-token"}, "invalid_token"),
        ({"Authorization": "Basic bWU6cGFzcw=="}, None),
        ({"Authorization": "Bearer " + "x" * 5000}, "invalid_token"),
    ],
)
def test_401__missing_or_unknown_tokens(
    client: TestClient, headers: dict, error: str | None
) -> None:
    response = client.get("/fhir/Task", headers=headers)
    assert response.status_code == 401
    assert response.json()["issue"][0]["code"] == "login"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="loopgate"')
    assert (f'error="{error}"' in challenge) == (error is not None)


def test_401__expired_revoked_and_other_audience_tokens(client: TestClient, engine: Engine) -> None:
    expired = mint(engine, organization=HOSPITAL, lifetime=-1)
    other_audience = mint(engine, organization=HOSPITAL, audience=f"{BASE_URL}/api/v1")
    revoked = mint(engine, organization=HOSPITAL)
    with engine.begin() as connection:
        connection.execute(
            update(token_table).where(token_table.c.client_id == "test-client").values(revoked_at=1)
        )
    for token in (expired, other_audience, revoked):
        assert client.get("/fhir/Task", headers=bearer(token)).status_code == 401


def test_401__a_token_in_the_query_string_is_ignored(client: TestClient) -> None:
    token = as_org(HOSPITAL)["Authorization"].removeprefix("Bearer ")
    assert client.get(f"/fhir/Task?access_token={token}").status_code == 401


def test_403__scopes_decide_which_interactions_are_allowed(
    client: TestClient, engine: Engine
) -> None:
    create_referral(client)
    read_only = mint(engine, organization=CBO, scope="system/Task.rs")
    assert client.get("/fhir/Task/task-1", headers=bearer(read_only)).status_code == 200
    current = client.get("/fhir/Task/task-1", headers=bearer(read_only)).json()
    refused = client.put(
        "/fhir/Task/task-1", json=moved(current, status="accepted"), headers=bearer(read_only)
    )
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["code"] == "forbidden"
    assert client.get("/fhir/Patient/pat-1001", headers=bearer(read_only)).status_code == 403
    assert (
        client.get(
            "/fhir/Task/_history",
            headers=bearer(mint(engine, organization=CBO, scope="system/Task.r")),
        ).status_code
        == 403
    )
    v1 = mint(engine, organization=CBO, scope="system/Task.read system/Task.write")
    accepted = client.put(
        "/fhir/Task/task-1", json=moved(current, status="accepted"), headers=bearer(v1)
    )
    assert accepted.status_code == 200


def test_404__another_cbo_can_neither_read_nor_change_the_referral(client: TestClient) -> None:
    current = create_referral(client)
    assert client.get("/fhir/Task/task-1", headers=as_org(OTHER_CBO)).status_code == 404
    assert client.get("/fhir/Task/task-1/_history/1", headers=as_org(OTHER_CBO)).status_code == 404
    assert client.get("/fhir/Task/task-1/_history", headers=as_org(OTHER_CBO)).status_code == 404
    assert (
        client.get("/fhir/ServiceRequest/sr-food-2001", headers=as_org(OTHER_CBO)).status_code
        == 404
    )
    search = client.get("/fhir/Task?status=requested", headers=as_org(OTHER_CBO)).json()
    assert search["total"] == 0
    history = client.get("/fhir/Task/_history", headers=as_org(OTHER_CBO)).json()
    assert history["total"] == 0
    change = client.put(
        "/fhir/Task/task-1", json=moved(current, status="accepted"), headers=as_org(OTHER_CBO)
    )
    assert change.status_code == 403


def test_patient_scope__a_patient_app_sees_only_its_patients_tasks(
    client: TestClient, engine: Engine
) -> None:
    create_referral(client)
    client.put(
        "/fhir/Patient/pat-2",
        json={"resourceType": "Patient", "id": "pat-2"},
        headers=as_org(HOSPITAL),
    )
    client.put(
        "/fhir/Task/task-2",
        json=task("task-2", **{"for": {"reference": "Patient/pat-2"}}),
        headers=as_org(HOSPITAL),
    )
    app = mint(
        engine,
        organization=HOSPITAL,
        fhir_user="Practitioner/dr-okafor",
        scope="patient/Task.rs patient/Patient.r",
        patient="Patient/pat-1001",
    )
    bundle = client.get("/fhir/Task", headers=bearer(app)).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["task-1"]
    assert client.get("/fhir/Task/task-2", headers=bearer(app)).status_code == 404
    assert client.get("/fhir/Patient/pat-1001", headers=bearer(app)).status_code == 200
    assert client.get("/fhir/Patient/pat-2", headers=bearer(app)).status_code == 404
    # search on Patient is not granted (r only): 403, not an empty bundle
    assert client.get("/fhir/Patient", headers=bearer(app)).status_code == 403


def test_includes__leave_out_what_the_token_cannot_read(client: TestClient, engine: Engine) -> None:
    create_referral(client)
    tasks_only = mint(engine, organization=CBO, scope="system/Task.rs")
    bundle = client.get(
        "/fhir/Task?_include=Task:focus&_include=Task:patient", headers=bearer(tasks_only)
    ).json()
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Task"]
    both = mint(engine, organization=CBO, scope="system/Task.rs system/ServiceRequest.r")
    bundle = client.get("/fhir/Task?_include=Task:focus", headers=bearer(both)).json()
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Task", "ServiceRequest"}


def test_batch__each_entry_is_authorized_on_its_own(client: TestClient, engine: Engine) -> None:
    seed_network(client)
    limited = mint(engine, organization=HOSPITAL, scope="system/Organization.cruds")
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Organization", "id": "ok", "name": "fine"},
                "request": {"method": "PUT", "url": "Organization/ok"},
            },
            {
                "resource": {"resourceType": "Patient", "id": "nope"},
                "request": {"method": "PUT", "url": "Patient/nope"},
            },
            {"request": {"method": "GET", "url": "Patient/pat-1001"}},
        ],
    }
    entries = client.post("/fhir", json=bundle, headers=bearer(limited)).json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["201", "403", "403"]
    bundle["type"] = "transaction"
    bundle["entry"] = bundle["entry"][:2]
    assert client.post("/fhir", json=bundle, headers=bearer(limited)).status_code == 403


def test_metadata__stays_open_and_names_the_smart_endpoints(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert uris["token"] == f"{BASE_URL}/auth/token"
    assert uris["authorize"] == f"{BASE_URL}/auth/authorize"
    discovery = client.get("/fhir/.well-known/smart-configuration").json()
    assert discovery["token_endpoint"] == uris["token"]


def test_smart_routes_after_the_fhir_routes__all_lie_outside_the_fhir_base(
    client: TestClient,
) -> None:
    # The FHIR routes are matched before SMART's (most requests are FHIR requests), so a
    # SMART route under /fhir would be taken by /fhir/{type}/{id}: only discovery may be
    # there, and it is included before them.
    smart = client.app.state.smart  # type: ignore[attr-defined]
    paths = _route_paths(smart.router)
    assert "/auth/token" in paths
    assert [path for path in paths if path.startswith("/fhir")] == []
    discovery = client.get("/fhir/.well-known/smart-configuration")
    assert discovery.status_code == 200
    assert discovery.json()["token_endpoint"] == f"{BASE_URL}/auth/token"


def _route_paths(router: Any) -> list[str]:
    """The path of every route in ``router``, through the routers it includes."""
    paths = []
    for route in router.routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router wrapper
        if included is not None:
            paths.extend(_route_paths(included))
        else:
            paths.append(route.path)
    return paths
