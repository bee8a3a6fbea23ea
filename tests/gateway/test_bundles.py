"""batch and transaction Bundles at POST /fhir: atomicity, urn:uuid rewriting, entry outcomes."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import (
    HOSPITAL,
    TEMP,
    as_org,
    create_referral,
    moved,
    seed_network,
    service_request,
    task,
)

PATIENT_URN = "urn:uuid:6f1a3c0e-7c59-4b0b-9b6e-1d2f3a4b5c6d"
SR_URN = "urn:uuid:0b7c2d1e-3f4a-4b5c-8d9e-0f1a2b3c4d5e"
CONDITION_URN = "urn:uuid:1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
CONSENT_URN = "urn:uuid:2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"
TASK_URN = "urn:uuid:3e4f5a6b-7c8d-4e9f-0a1b-2c3d4e5f6a7b"


def _post(url: str, resource: dict, **request: Any) -> dict:
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }


def referral_transaction(*, task_status: str = "requested") -> dict:
    """Patient + ServiceRequest + Condition + Consent + Task, linked by urn:uuid fullUrls."""
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": "MRN-77"}],
        "name": [{"family": "Okonkwo", "given": ["Samuel"]}],
    }
    sr = service_request(
        subject={"reference": PATIENT_URN},
        reasonReference=[{"reference": CONDITION_URN}],
        supportingInfo=[{"reference": CONSENT_URN}],
    )
    del sr["id"]
    condition = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "733423003"}]},
        "subject": {"reference": PATIENT_URN},
    }
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}
                ]
            }
        ],
        "patient": {"reference": PATIENT_URN},
        "dateTime": "2025-03-10T14:00:00Z",
        "organization": [{"reference": HOSPITAL}],
        "sourceAttachment": {"title": "signed form"},
        "policyRule": {"coding": [{"code": "hipaa-auth"}]},
    }
    referral_task = task(
        focus={"reference": SR_URN}, status=task_status, **{"for": {"reference": PATIENT_URN}}
    )
    del referral_task["id"]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _post(TASK_URN, referral_task),  # listed first: references resolve anyway
            _post(PATIENT_URN, patient, ifNoneExist="identifier=urn:mrn|MRN-77"),
            _post(SR_URN, sr),
            _post(CONDITION_URN, condition),
            _post(CONSENT_URN, consent),
        ],
    }


def _count(client: TestClient, resource_type: str) -> int:
    bundle = client.get(f"/fhir/{resource_type}?_summary=count", headers=as_org(HOSPITAL))
    return int(bundle.json()["total"])


def test_transaction__creates_a_referral_and_rewrites_urn_uuids(client: TestClient) -> None:
    seed_network(client)
    response = client.post("/fhir", json=referral_transaction(), headers=as_org(HOSPITAL))
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in bundle["entry"]]
    assert statuses == ["201 Created"] * 5
    locations = [e["response"]["location"] for e in bundle["entry"]]
    task_id = locations[0].split("/")[1]
    patient_id, sr_id = locations[1].split("/")[1], locations[2].split("/")[1]
    stored = client.get(f"/fhir/Task/{task_id}", headers=as_org(HOSPITAL)).json()
    assert stored["focus"] == {"reference": f"ServiceRequest/{sr_id}"}
    assert stored["for"] == {"reference": f"Patient/{patient_id}"}
    sr = client.get(f"/fhir/ServiceRequest/{sr_id}", headers=as_org(HOSPITAL)).json()
    assert sr["supportingInfo"][0]["reference"].startswith("Consent/")
    assert "urn:uuid" not in str(sr)
    # the rewritten references are searchable
    found = client.get(
        f"/fhir/Task?focus={sr_id}&patient={patient_id}", headers=as_org(HOSPITAL)
    ).json()
    assert found["total"] == 1
    assert _count(client, "Provenance") == 1


def test_transaction__if_none_exist_reuses_the_existing_patient(client: TestClient) -> None:
    seed_network(client)
    first = client.post("/fhir", json=referral_transaction(), headers=as_org(HOSPITAL)).json()
    second = client.post("/fhir", json=referral_transaction(), headers=as_org(HOSPITAL)).json()
    assert second["entry"][1]["response"]["status"] == "200 OK"
    assert second["entry"][1]["response"]["location"] == first["entry"][1]["response"]["location"]
    assert _count(client, "Patient") == 2  # the seeded patient and the one from the bundle
    assert _count(client, "Task") == 2


def test_transaction__entries_that_point_at_a_reused_patient__are_stored_and_indexed_with_its_id(
    client: TestClient,
) -> None:
    # A POST's id is chosen before the write queues, provisionally: when its If-None-Exist
    # matches, every reference to it, and every index row, must take the stored id instead.
    seed_network(client)
    first = client.post("/fhir", json=referral_transaction(), headers=as_org(HOSPITAL)).json()
    second = client.post("/fhir", json=referral_transaction(), headers=as_org(HOSPITAL)).json()
    patient_id = first["entry"][1]["response"]["location"].split("/")[1]
    task_id = second["entry"][0]["response"]["location"].split("/")[1]
    sr_id = second["entry"][2]["response"]["location"].split("/")[1]

    task_read = client.get(f"/fhir/Task/{task_id}", headers=as_org(HOSPITAL)).json()
    assert task_read["for"] == {"reference": f"Patient/{patient_id}"}
    sr_read = client.get(f"/fhir/ServiceRequest/{sr_id}", headers=as_org(HOSPITAL)).json()
    assert sr_read["subject"] == {"reference": f"Patient/{patient_id}"}
    tasks = client.get(f"/fhir/Task?patient={patient_id}", headers=as_org(HOSPITAL)).json()
    assert tasks["total"] == 2
    requests = client.get(
        f"/fhir/ServiceRequest?subject=Patient/{patient_id}", headers=as_org(HOSPITAL)
    ).json()
    assert {e["resource"]["id"] for e in requests["entry"]} >= {sr_id}
    assert requests["total"] == 2
    # the reused patient cannot be deleted while the new referral points at it
    deleted = client.delete(f"/fhir/Patient/{patient_id}", headers=as_org(HOSPITAL))
    assert deleted.status_code == 409, deleted.text


def test_transaction__is_atomic_when_an_entry_breaks_a_rule(client: TestClient) -> None:
    seed_network(client)
    before = {t: _count(client, t) for t in ("Patient", "ServiceRequest", "Task", "Consent")}
    response = client.post(
        "/fhir", json=referral_transaction(task_status="accepted"), headers=as_org(HOSPITAL)
    )
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"][0].startswith("Bundle.entry[0]")
    after = {t: _count(client, t) for t in before}
    assert after == before


def test_transaction__profile_errors_point_into_the_bundle(client: TestClient) -> None:
    seed_network(client)
    bundle = referral_transaction(task_status="received")
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 422
    assert "Bundle.entry[0].resource.status" in response.json()["issue"][0]["expression"]
    assert _count(client, "ServiceRequest") == 0


def test_transaction__structure_errors_are_400_and_store_nothing(client: TestClient) -> None:
    seed_network(client)
    bundle = referral_transaction()
    bundle["entry"][3]["resource"]["onsetDateTime"] = "last tuesday"
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[3].resource.onsetDateTime"]
    assert _count(client, "Patient") == 1


def test_transaction__dangling_reference_rolls_back(client: TestClient) -> None:
    seed_network(client)
    bundle = referral_transaction()
    bundle["entry"][2]["resource"]["performer"] = [{"reference": "Organization/ghost"}]
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == [
        "Bundle.entry[2].resource.performer[0].reference"
    ]
    assert _count(client, "Task") == 0


def test_transaction__forbidden_entry_fails_the_whole_bundle(client: TestClient) -> None:
    current = create_referral(client)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Organization", "id": "new-org", "name": "n"},
                "request": {"method": "PUT", "url": "Organization/new-org"},
            },
            {
                "resource": moved(current, status="accepted"),
                "request": {"method": "PUT", "url": "Task/task-1"},
            },
        ],
    }
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 403
    assert client.get("/fhir/Organization/new-org", headers=as_org(HOSPITAL)).status_code == 404


def test_transaction__reads_searches_and_deletes_in_spec_order(client: TestClient) -> None:
    seed_network(client)
    client.put(
        "/fhir/Organization/temp",
        json={"resourceType": "Organization", "id": "temp"},
        headers=as_org(HOSPITAL),
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": "Organization?_id=temp"}},
            {"request": {"method": "GET", "url": "Patient/pat-1001"}},
            {"request": {"method": "DELETE", "url": "Organization/temp"}},
        ],
    }
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["resource"]["total"] == 0  # the DELETE ran first
    assert entries[1]["resource"]["id"] == "pat-1001"
    assert entries[2]["response"]["status"] == "204 No Content"


def test_transaction__touching_a_resource_twice_is_400(client: TestClient) -> None:
    org = {"resourceType": "Organization", "id": "o1", "name": "x"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": org, "request": {"method": "PUT", "url": "Organization/o1"}},
            {"resource": org, "request": {"method": "PUT", "url": "Organization/o1"}},
        ],
    }
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 400


def test_transaction__prefer_representation_returns_resources(client: TestClient) -> None:
    seed_network(client)
    response = client.post(
        "/fhir",
        json=referral_transaction(),
        headers=as_org(HOSPITAL, Prefer="return=representation"),
    )
    resources = [e["resource"]["resourceType"] for e in response.json()["entry"]]
    assert resources == ["Task", "Patient", "ServiceRequest", "Condition", "Consent"]


def test_batch__entries_succeed_or_fail_on_their_own(client: TestClient) -> None:
    create_referral(client)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Organization", "id": "ok", "name": "fine"},
                "request": {"method": "PUT", "url": "Organization/ok"},
            },
            {
                "resource": task("t-bad", status="completed"),
                "request": {"method": "PUT", "url": "Task/t-bad"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:not-in-a-batch"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "GET", "url": "Task/task-1"}},
            {"request": {"method": "GET", "url": "Task/missing"}},
        ],
    }
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["201", "422", "400", "200", "404"]
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Organization/ok", headers=as_org(HOSPITAL)).status_code == 200
    assert client.get("/fhir/Task/t-bad", headers=as_org(HOSPITAL)).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Patient"},
        {"resourceType": "Bundle", "type": "searchset"},
        {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {}}]},
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "PATCH", "url": "Patient/1"}}],
        },
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "request": {"method": "POST", "url": "Spaceship"},
                    "resource": {"resourceType": "Spaceship"},
                }
            ],
        },
        {"resourceType": "Bundle", "type": "transaction", "entry": "nope"},
    ],
)
def test_bundle__malformed_bundles_are_4xx(client: TestClient, body: dict) -> None:
    response = client.post("/fhir", json=body, headers=as_org(HOSPITAL))
    assert 400 <= response.status_code < 500
    assert response.json()["resourceType"] == "OperationOutcome"


def test_transaction__category_codes_are_checked_in_bundles_too(client: TestClient) -> None:
    seed_network(client)
    bundle = referral_transaction()
    bundle["entry"][2]["resource"]["category"] = [{"coding": [{"system": TEMP, "code": "nope"}]}]
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 422
    assert _count(client, "Patient") == 1


def test_transaction__a_task_may_name_a_practitioner_role_created_in_the_same_bundle(
    client: TestClient,
) -> None:
    """The Task's requester organization is read through a PractitionerRole this transaction
    has only just written: the read must see it."""
    seed_network(client)
    client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    role_urn = "urn:uuid:4f5a6b7c-8d9e-4f0a-1b2c-3d4e5f6a7b8c"
    role = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": "Practitioner/dr-okafor"},
        "organization": {"reference": HOSPITAL},
    }
    referral_task = task(requester={"reference": role_urn})
    del referral_task["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_post(role_urn, role), _post(TASK_URN, referral_task)],
    }
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 200, response.text
    # only the requester organization creates a Task: the hospital was recognised through
    # the new role, and the Task is the hospital's to read
    task_id = response.json()["entry"][1]["response"]["location"].split("/")[1]
    assert client.get(f"/fhir/Task/{task_id}", headers=as_org(HOSPITAL)).status_code == 200


def test_transaction__a_reference_to_a_resource_it_deletes_is_422(client: TestClient) -> None:
    seed_network(client)
    client.put(
        "/fhir/Organization/closing",
        json={"resourceType": "Organization", "id": "closing", "name": "Closing down"},
        headers=as_org(HOSPITAL),
    )
    role = {
        "resourceType": "PractitionerRole",
        "organization": {"reference": "Organization/closing"},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": "Organization/closing"}},
            _post("urn:uuid:5a6b7c8d-9e0f-4a1b-2c3d-4e5f6a7b8c9d", role),
        ],
    }
    response = client.post("/fhir", json=bundle, headers=as_org(HOSPITAL))
    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["expression"] == [
        "Bundle.entry[1].resource.organization.reference"
    ]
    assert client.get("/fhir/Organization/closing", headers=as_org(HOSPITAL)).status_code == 200
