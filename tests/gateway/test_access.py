"""Who sees and changes what: organization visibility, SMART grants, patient compartments.

Data is built over HTTP; the checks call ``FhirService`` with explicit access contexts (the
same object the HTTP layer builds from a token), on the real database.
"""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from conformance.access import AccessContext, Grant
from conformance.errors import Forbidden, ResourceNotFound
from gateway.fhir import FhirService
from tests.builders import (
    CBO,
    HOSPITAL,
    OTHER_CBO,
    as_org,
    create_referral,
    moved,
    procedure,
    resulting_activity,
    seed_network,
    service_request,
    task,
)
from tests.conftest import FHIR_BASE

ALL = frozenset({"c", "r", "u", "d", "s"})


def org(reference: str, *grants: Grant, **extra: object) -> AccessContext:
    return AccessContext(organization=reference, client_id="test", grants=grants or None, **extra)  # type: ignore[arg-type]


def system(
    resource_type: str = "*",
    letters: str = "cruds",
    *constraints: tuple[str, str],
    level: str = "system",
) -> Grant:
    return Grant(level, resource_type, frozenset(letters), tuple(constraints))  # type: ignore[arg-type]


@pytest.fixture
def service(engine: Engine) -> FhirService:
    return FhirService(engine, fhir_base=FHIR_BASE)


def _search_ids(
    service: FhirService, actor: AccessContext, resource_type: str, *pairs: tuple[str, str]
) -> list[str]:
    result = service.search(actor, service.parse_search(resource_type, list(pairs)))
    return sorted(m.id for m in result.matches)


def _readable(service: FhirService, actor: AccessContext, resource_type: str, rid: str) -> bool:
    try:
        service.read(actor, resource_type, rid)
    except ResourceNotFound:
        return False
    return True


# -- organization visibility -----------------------------------------------------------------


def test_visibility__a_task_is_seen_by_its_requester_and_owner_only(
    client: TestClient, service: FhirService
) -> None:
    create_referral(client)
    assert _readable(service, org(HOSPITAL), "Task", "task-1")
    assert _readable(service, org(CBO), "Task", "task-1")
    assert not _readable(service, org(OTHER_CBO), "Task", "task-1")
    assert _search_ids(service, org(OTHER_CBO), "Task") == []
    assert _search_ids(service, org(CBO), "Task") == ["task-1"]


def test_visibility__the_referral_is_seen_through_its_task(
    client: TestClient, service: FhirService
) -> None:
    seed_network(client)
    consent = {
        "resourceType": "Consent",
        "id": "consent-1",
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}
                ]
            }
        ],
        "patient": {"reference": "Patient/pat-1001"},
        "dateTime": "2025-03-10",
        "organization": [{"reference": HOSPITAL}],
        "sourceAttachment": {"title": "form"},
        "policyRule": {"coding": [{"code": "hipaa-auth"}]},
    }
    condition = {
        "resourceType": "Condition",
        "id": "cond-1",
        "code": {"text": "Food insecurity"},
        "subject": {"reference": "Patient/pat-1001"},
    }
    for resource in (consent, condition):
        client.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}",
            json=resource,
            headers=as_org(HOSPITAL),
        )
    client.put(
        "/fhir/ServiceRequest/sr-food-2001",
        headers=as_org(HOSPITAL),
        json=service_request(
            supportingInfo=[{"reference": "Consent/consent-1"}],
            reasonReference=[{"reference": "Condition/cond-1"}],
        ),
    )
    client.put("/fhir/Task/task-1", json=task(), headers=as_org(HOSPITAL))
    for resource_type, rid in (
        ("ServiceRequest", "sr-food-2001"),
        ("Patient", "pat-1001"),
        ("Consent", "consent-1"),
        ("Condition", "cond-1"),
    ):
        assert _readable(service, org(CBO), resource_type, rid), resource_type
        assert not _readable(service, org(OTHER_CBO), resource_type, rid), resource_type
        assert _readable(service, org(HOSPITAL), resource_type, rid), resource_type


def test_visibility__open_tasks_are_seen_by_every_organization_until_claimed(
    client: TestClient, service: FhirService
) -> None:
    seed_network(client)
    client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    open_task = task()
    del open_task["owner"]
    created = client.put("/fhir/Task/task-1", json=open_task, headers=as_org(HOSPITAL)).json()
    assert _readable(service, org(OTHER_CBO), "Task", "task-1")
    assert _readable(service, org(OTHER_CBO), "ServiceRequest", "sr-food-2001")
    client.put(
        "/fhir/Task/task-1",
        json=moved(created, status="accepted", owner={"reference": CBO}),
        headers=as_org(CBO),
    )
    assert not _readable(service, org(OTHER_CBO), "Task", "task-1")
    assert not _readable(service, org(OTHER_CBO), "ServiceRequest", "sr-food-2001")
    assert _readable(service, org(CBO), "Task", "task-1")


def test_visibility__the_hospital_sees_the_cbos_procedure_through_the_output(
    client: TestClient, service: FhirService
) -> None:
    current = create_referral(client)
    client.put("/fhir/Procedure/proc-1", json=procedure(), headers=as_org(CBO))
    assert not _readable(service, org(HOSPITAL), "Procedure", "proc-1")
    current = client.put(
        "/fhir/Task/task-1", json=moved(current, status="accepted"), headers=as_org(CBO)
    ).json()
    client.put(
        "/fhir/Task/task-1",
        json=moved(current, status="completed", output=[resulting_activity()]),
        headers=as_org(CBO),
    )
    assert _readable(service, org(HOSPITAL), "Procedure", "proc-1")
    assert not _readable(service, org(OTHER_CBO), "Procedure", "proc-1")


def test_visibility__provenance_follows_its_task_and_directories_are_open(
    client: TestClient, service: FhirService
) -> None:
    create_referral(client)
    assert len(_search_ids(service, org(CBO), "Provenance")) == 1
    assert _search_ids(service, org(OTHER_CBO), "Provenance") == []
    assert _readable(service, org(OTHER_CBO), "PractitionerRole", "prr-dr-okafor")
    assert _readable(service, org(OTHER_CBO), "Organization", "mercy-hospital")
    admin = AccessContext(organization=OTHER_CBO, roles=frozenset({"admin"}))
    assert _readable(service, admin, "Task", "task-1")


def test_visibility__includes_leave_out_what_the_caller_cannot_see(
    client: TestClient, service: FhirService
) -> None:
    create_referral(client)
    client.put(
        "/fhir/Task/task-2",
        json=task("task-2", owner={"reference": OTHER_CBO}),
        headers=as_org(HOSPITAL),
    )
    result = service.search(
        org(CBO),
        service.parse_search(
            "ServiceRequest", [("_id", "sr-food-2001"), ("_revinclude", "Task:focus")]
        ),
    )
    assert [(i.resource_type, i.id) for i in result.included] == [("Task", "task-1")]


def test_writes__only_the_creating_or_described_organization_changes_a_resource(
    client: TestClient,
) -> None:
    create_referral(client)
    patient = client.get("/fhir/Patient/pat-1001", headers=as_org(HOSPITAL)).json()
    renamed = moved(patient, gender="other")
    assert (
        client.put("/fhir/Patient/pat-1001", json=renamed, headers=as_org(CBO)).status_code == 403
    )
    assert client.delete("/fhir/Patient/pat-1001", headers=as_org(CBO)).status_code == 403
    own = client.get("/fhir/Organization/eastside-food-bank", headers=as_org(CBO)).json()
    # an organization keeps its own directory record, whoever entered it
    assert (
        client.put(
            "/fhir/Organization/eastside-food-bank",
            json=moved(own, alias=["EFB"]),
            headers=as_org(CBO),
        ).status_code
        == 200
    )
    assert (
        client.put(
            "/fhir/Organization/mercy-hospital",
            json=moved(own, id="mercy-hospital"),
            headers=as_org(CBO),
        ).status_code
        == 403
    )


# -- SMART grants -------------------------------------------------------------------------------


def test_grants__an_interaction_without_a_grant_is_403(
    client: TestClient, service: FhirService
) -> None:
    create_referral(client)
    reader = org(CBO, system("Task", "rs"))
    assert _readable(service, reader, "Task", "task-1")
    with pytest.raises(Forbidden):
        service.read(reader, "Patient", "pat-1001")
    with pytest.raises(Forbidden):
        service.update(reader, "Task", "task-1", task(status="accepted"))
    with pytest.raises(Forbidden):
        service.search(reader, service.parse_search("ServiceRequest", []))


def test_grants__patient_scopes_confine_to_the_context_patient(
    client: TestClient, service: FhirService
) -> None:
    create_referral(client)
    client.put(
        "/fhir/Patient/pat-2",
        json={"resourceType": "Patient", "id": "pat-2"},
        headers=as_org(HOSPITAL),
    )
    client.put(
        "/fhir/Task/task-2",
        headers=as_org(HOSPITAL),
        json=task("task-2", **{"for": {"reference": "Patient/pat-2"}}),
    )
    app = org(HOSPITAL, system("*", "rs", level="patient"), patient="Patient/pat-1001")
    assert _search_ids(service, app, "Task") == ["task-1"]
    assert not _readable(service, app, "Task", "task-2")
    assert _readable(service, app, "Patient", "pat-1001")
    assert not _readable(service, app, "Patient", "pat-2")
    assert _readable(service, app, "Practitioner", "dr-okafor")
    no_context = org(HOSPITAL, system("*", "rs", level="patient"))
    with pytest.raises(Forbidden):
        service.read(no_context, "Task", "task-1")


def test_grants__patient_writes_stay_in_the_compartment(
    client: TestClient, service: FhirService
) -> None:
    create_referral(client)
    client.put(
        "/fhir/Patient/pat-2",
        json={"resourceType": "Patient", "id": "pat-2"},
        headers=as_org(HOSPITAL),
    )
    app = org(HOSPITAL, system("*", "cruds", level="patient"), patient="Patient/pat-1001")
    mine = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/pat-1001"},
    }
    assert service.create(app, mine).created
    theirs = {**mine, "subject": {"reference": "Patient/pat-2"}}
    with pytest.raises(Forbidden):
        service.create(app, theirs)


def test_grants__v2_constraints_filter_reads_and_searches(
    client: TestClient, service: FhirService
) -> None:
    seed_network(client)
    category = "http://terminology.hl7.org/CodeSystem/observation-category"
    for oid, code in (("obs-sdoh", "social-history"), ("obs-lab", "laboratory")):
        client.put(
            f"/fhir/Observation/{oid}",
            headers=as_org(HOSPITAL),
            json={
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "category": [{"coding": [{"system": category, "code": code}]}],
                "code": {"text": oid},
                "subject": {"reference": "Patient/pat-1001"},
            },
        )
    constrained = org(
        HOSPITAL, system("Observation", "rs", ("category", f"{category}|social-history"))
    )
    assert _search_ids(service, constrained, "Observation") == ["obs-sdoh"]
    assert _readable(service, constrained, "Observation", "obs-sdoh")
    assert not _readable(service, constrained, "Observation", "obs-lab")
    both = org(
        HOSPITAL,
        system("Observation", "rs", ("category", f"{category}|social-history")),
        system("Observation", "rs", ("category", f"{category}|laboratory")),
    )
    assert _search_ids(service, both, "Observation") == ["obs-lab", "obs-sdoh"]
