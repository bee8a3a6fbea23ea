"""Build the sandbox network and referral resources the tests use, through the real API.

Orgs: a hospital (requester) with one clinician, and two CBOs; the patient is Denise Rivera
from ../shared/examples/fhir. Everything is written with PUT so ids are predictable.
"""

import copy
from typing import Any

from fastapi.testclient import TestClient

HOSPITAL = "Organization/mercy-hospital"
CBO = "Organization/eastside-food-bank"
OTHER_CBO = "Organization/northside-housing"
TEMP = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
TASK_PROFILE = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
)
FHIR_JSON = "application/fhir+json"


ADMIN = "admin"
"""A network administrator: acts for Organization/loopgate-network and sees every record."""
ADMIN_ORGANIZATION = "Organization/loopgate-network"

TOKENS: dict[str, str] = {}
"""Bearer tokens of the current test, per organization (and ``ADMIN``); see tests/conftest.py."""


def as_org(organization: str, **extra: str) -> dict[str, str]:
    """Headers that make a request act for ``organization`` (or as ``ADMIN``) with a token
    allowing every interaction on every type (``system/*.cruds``)."""
    if organization not in TOKENS:
        raise KeyError(f"no token minted for {organization}; use the client fixture")
    return {"Authorization": f"Bearer {TOKENS[organization]}", "Content-Type": FHIR_JSON, **extra}


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON, **extra}


def organization(org_id: str, name: str) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": org_id, "active": True, "name": name}


def network() -> list[dict[str, Any]]:
    return [
        organization("mercy-hospital", "Mercy Hospital"),
        organization("eastside-food-bank", "Eastside Community Food Bank"),
        organization("northside-housing", "Northside Housing Services"),
        {
            "resourceType": "Practitioner",
            "id": "dr-okafor",
            "name": [{"family": "Okafor", "given": ["Amara"]}],
        },
        {
            "resourceType": "PractitionerRole",
            "id": "prr-dr-okafor",
            "active": True,
            "practitioner": {"reference": "Practitioner/dr-okafor"},
            "organization": {"reference": HOSPITAL},
        },
        {
            "resourceType": "Patient",
            "id": "pat-1001",
            "identifier": [
                {
                    "system": "http://mercyhospital.example.org/identifiers/mrn",
                    "value": "MRN-0048213",
                }
            ],
            "name": [{"family": "Rivera", "given": ["Denise", "M."]}],
            "gender": "female",
            "birthDate": "1986-03-14",
        },
    ]


def seed_network(client: TestClient) -> None:
    for resource in network():
        response = client.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}",
            json=resource,
            headers=as_org(HOSPITAL),
        )
        assert response.status_code in (200, 201), response.text


def service_request(sr_id: str = "sr-food-2001", **overrides: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "ServiceRequest",
        "id": sr_id,
        "meta": {
            "profile": [
                "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest"
            ]
        },
        "status": "active",
        "intent": "order",
        "category": [
            {"coding": [{"system": TEMP, "code": "food-insecurity", "display": "Food Insecurity"}]}
        ],
        "code": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "467771000124109",
                    "display": "Assistance with application for food pantry program",
                }
            ]
        },
        "subject": {"reference": "Patient/pat-1001"},
        "authoredOn": "2025-03-10T14:05:00-05:00",
        "requester": {"reference": "PractitionerRole/prr-dr-okafor"},
        "performer": [{"reference": CBO}],
    }
    resource.update(overrides)
    return resource


def task(task_id: str = "task-1", sr_id: str = "sr-food-2001", **overrides: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "meta": {"profile": [TASK_PROFILE]},
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "focus": {"reference": f"ServiceRequest/{sr_id}"},
        "for": {"reference": "Patient/pat-1001"},
        "authoredOn": "2025-03-10T14:06:00-05:00",
        "requester": {"reference": "PractitionerRole/prr-dr-okafor"},
        "owner": {"reference": CBO},
    }
    resource.update(overrides)
    return resource


def procedure(proc_id: str = "proc-1", sr_id: str = "sr-food-2001") -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": proc_id,
        "basedOn": [{"reference": f"ServiceRequest/{sr_id}"}],
        "status": "completed",
        "category": {"coding": [{"system": TEMP, "code": "food-insecurity"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "467771000124109"}]},
        "subject": {"reference": "Patient/pat-1001"},
        "performedDateTime": "2025-03-14T10:15:00-05:00",
        "performer": [{"actor": {"reference": CBO}}],
    }


def resulting_activity(proc_id: str = "proc-1") -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": TEMP, "code": "resulting-activity"}]},
        "valueReference": {"reference": f"Procedure/{proc_id}"},
    }


def create_referral(client: TestClient, *, task_id: str = "task-1", **overrides: Any) -> dict:
    """Seed the network, then PUT the ServiceRequest and a requested Task as the hospital."""
    seed_network(client)
    response = client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    assert response.status_code in (200, 201), response.text
    response = client.put(
        f"/fhir/Task/{task_id}", json=task(task_id, **overrides), headers=as_org(HOSPITAL)
    )
    assert response.status_code == 201, response.text
    return response.json()


def moved(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a stored resource with ``changes`` applied and server meta left alone."""
    updated = copy.deepcopy(resource)
    updated.update(changes)
    return updated
