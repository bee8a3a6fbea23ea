"""FHIR search end to end: GET and POST ``_search`` over a referral network built through the API.

Spec: http://hl7.org/fhir/R4/search.html. The parameters are the ones Gravity clients use
(reference/gravity.md Appendix A, conformance/search_parameters.py). Every assertion is on what a
client sees: the ids matched, the included resources, totals and paging links.
"""

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, event, text

from gateway.store.engine import write_transaction
from tests.builders import (
    ADMIN,
    CBO,
    HOSPITAL,
    OTHER_CBO,
    TASK_PROFILE,
    TEMP,
    as_org,
    moved,
    procedure,
    resulting_activity,
    seed_network,
    service_request,
    task,
)

LOCAL_BASE = "http://127.0.0.1:8080/fhir"
EXTERNAL_BASE = "https://ehr.example.org/fhir"
EXTERNAL_ORG = f"{EXTERNAL_BASE}/Organization/456"
EXTERNAL_CONSENT = f"{EXTERNAL_BASE}/Consent/consent-9"
SNOMED = "http://snomed.info/sct"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
MRN = "http://mercyhospital.example.org/identifiers/mrn"
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
SR_PROFILE = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest"
FOOD, HOUSING, TRANSPORT = "sr-food-2001", "sr-housing-3001", "sr-transport-4001"
FORM = "application/x-www-form-urlencoded"

Params = Mapping[str, str] | Iterable[tuple[str, str]]


# -- talking to the server ----------------------------------------------------------------------


def _pairs(params: Params) -> list[tuple[str, str]]:
    return list(params.items()) if isinstance(params, Mapping) else list(params)


def search_response(
    client: TestClient,
    resource_type: str,
    params: Params = (),
    *,
    via: str = "GET",
    org: str = ADMIN,
    **headers: str,
) -> Response:
    """Search as ``org``: GET with a query string, or POST ``_search`` with a form body."""
    response: Response
    if via == "GET":
        response = client.get(
            f"/fhir/{resource_type}", params=_pairs(params), headers=as_org(org, **headers)
        )
    else:
        response = client.post(
            f"/fhir/{resource_type}/_search",
            content=urlencode(_pairs(params)),
            headers=as_org(org, **{"Content-Type": FORM}, **headers),
        )
    return response


def search(
    client: TestClient, resource_type: str, params: Params = (), **kwargs: Any
) -> dict[str, Any]:
    response = search_response(client, resource_type, params, **kwargs)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


def follow(client: TestClient, url: str, org: str = ADMIN) -> dict[str, Any]:
    response = client.get(url, headers=as_org(org))
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    return bundle


def entries(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [e for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def matched(bundle: dict[str, Any]) -> list[str]:
    """Ids of the matches, sorted (use ``in_order`` when the order is the point)."""
    return sorted(in_order(bundle))


def in_order(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in entries(bundle, "match")]


def included(bundle: dict[str, Any]) -> list[str]:
    return sorted(
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries(bundle, "include")
    )


def link(bundle: dict[str, Any], relation: str) -> str | None:
    found = [item["url"] for item in bundle["link"] if item["relation"] == relation]
    return found[0] if found else None


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def assert_outcome(response: Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert outcome["issue"][0]["code"] == code


def check_cases(
    client: TestClient,
    resource_type: str,
    cases: Iterable[tuple[Params, list[str]]],
    **kwargs: Any,
) -> None:
    """Run each search, by GET and by POST, and compare the matches and total with ``expected``."""
    for params, expected in cases:
        for via in ("GET", "POST"):
            bundle = search(client, resource_type, params, via=via, **kwargs)
            assert matched(bundle) == sorted(expected), (via, params)
            assert bundle["total"] == len(expected), (via, params)


@contextmanager
def selects_naming(engine: Engine, table: str) -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs naming ``table`` that reach SQLite while the block runs, values written
    in: SQLite's own trace, so statements sent straight to the driver are seen too."""
    found: list[tuple[str, Any]] = []
    traced: list[Any] = []

    def capture(statement: str) -> None:
        if statement.lstrip().startswith("SELECT") and table in statement:
            found.append((statement, ()))

    def trace(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_trace_callback(capture)
        traced.append(dbapi_connection)

    event.listen(engine, "checkout", trace)
    try:
        yield found
    finally:
        event.remove(engine, "checkout", trace)
        for dbapi_connection in traced:
            dbapi_connection.set_trace_callback(None)


def sqlite_plans(engine: Engine, statements: list[tuple[str, Any]]) -> list[str]:
    """SQLite's ``EXPLAIN QUERY PLAN`` of each statement, its steps joined by `` | ``."""
    with engine.connect() as connection:
        return [
            " | ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            )
            for statement, params in statements
        ]


def put(client: TestClient, resource: dict[str, Any], org: str = HOSPITAL) -> dict[str, Any]:
    response = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=as_org(org)
    )
    assert response.status_code in (200, 201), response.text
    stored: dict[str, Any] = response.json()
    return stored


def delete(client: TestClient, resource_type: str, resource_id: str, org: str = HOSPITAL) -> None:
    response = client.delete(f"/fhir/{resource_type}/{resource_id}", headers=as_org(org))
    assert response.status_code == 204, response.text


def last_updated(resource: dict[str, Any]) -> str:
    return str(resource["meta"]["lastUpdated"])


# -- the data -----------------------------------------------------------------------------------


def patient(patient_id: str, family: str, given: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"family": family, "given": given}],
        **extra,
    }


def coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def housing_request() -> dict[str, Any]:
    resource = service_request(
        HOUSING,
        intent="plan",
        status="on-hold",
        category=[coded(TEMP, "housing-instability")],
        code=coded(SNOMED, "710824005"),
        subject={"reference": "Patient/pat-2002"},
        authoredOn="2025-04-02T09:00:00Z",
        requester={"reference": HOSPITAL},
        performer=[{"reference": OTHER_CBO}],
        occurrencePeriod={"start": "2025-04-05", "end": "2025-04-30"},
        supportingInfo=[
            {"reference": "Condition/cond-housing"},
            {"reference": EXTERNAL_CONSENT},
        ],
    )
    del resource["meta"]  # no claimed profile: _profile must not match it
    return resource


def transport_request() -> dict[str, Any]:
    return service_request(
        TRANSPORT,
        status="completed",
        category=[coded(TEMP, "transportation-insecurity")],
        code=coded(SNOMED, "1290141003"),
        authoredOn="2025-02-01T08:00:00Z",
        performer=[{"reference": CBO}, {"reference": EXTERNAL_ORG}],
    )


def housing_procedure() -> dict[str, Any]:
    resource = procedure("proc-2", HOUSING)
    del resource["performedDateTime"]
    resource.update(
        status="in-progress",
        category=coded(TEMP, "housing-instability"),
        code=coded(SNOMED, "710824005"),
        subject={"reference": "Patient/pat-2002"},
        performedPeriod={"start": "2025-04-06"},
        performer=[{"actor": {"reference": OTHER_CBO}}],
    )
    return resource


def referral_world(client: TestClient, *, with_tasks: bool = True) -> dict[str, dict[str, Any]]:
    """Three referrals for two patients, two Procedures and (``with_tasks``) four Tasks.

    - ServiceRequests: food (pat-1001, active order, occurrence 2025-03-20), housing (pat-2002,
      on-hold plan, no profile, requested by the hospital Organization, supporting info local
      and external, occurrence period in April), transport (pat-1001, completed, no occurrence,
      an external performer)
    - proc-1 (completed, food SR, 2025-03-14), proc-2 (in-progress, housing SR, from 2025-04-06)
    - task-1: requested, food SR, pat-1001, owned by the food bank, authored 2025-03-10
    - task-2: requested, housing SR, pat-2002, owned by the housing CBO, authored 2025-04-02,
      requester given as the hospital Organization itself
    - task-3: draft, food SR, no owner, no profile, partOf task-1, basedOn the food SR, 2025-03-11
    - task-4: completed by the food bank with output proc-1, authored 2025-03-12 (written last)
    """
    seed_network(client)
    world: dict[str, dict[str, Any]] = {}

    def keep(resource: dict[str, Any], org: str = HOSPITAL) -> None:
        world[resource["id"]] = put(client, resource, org)

    keep(
        patient(
            "pat-2002",
            "Núñez",
            ["José"],
            identifier=[{"system": MRN, "value": "MRN-0051177"}],
            birthDate="1959-11-02",
        )
    )
    keep(
        {
            "resourceType": "Condition",
            "id": "cond-housing",
            "code": coded(SNOMED, "32911000"),
            "subject": {"reference": "Patient/pat-2002"},
        }
    )
    keep(service_request(FOOD, occurrenceDateTime="2025-03-20"))
    keep(housing_request())
    keep(transport_request())
    keep(procedure("proc-1", FOOD), CBO)
    keep(housing_procedure(), CBO)
    if not with_tasks:
        return world
    keep(task("task-1", FOOD))
    keep(
        task(
            "task-2",
            HOUSING,
            **{
                "for": {"reference": "Patient/pat-2002"},
                "authoredOn": "2025-04-02T09:05:00Z",
                "requester": {"reference": HOSPITAL},
                "owner": {"reference": OTHER_CBO},
            },
        )
    )
    third = task(
        "task-3",
        FOOD,
        status="draft",
        authoredOn="2025-03-11T12:00:00Z",
        partOf=[{"reference": "Task/task-1"}],
        basedOn=[{"reference": f"ServiceRequest/{FOOD}"}],
    )
    del third["owner"], third["meta"]
    keep(third)
    keep(task("task-4", FOOD, authoredOn="2025-03-12T10:00:00Z"))
    keep(moved(world["task-4"], status="accepted"), CBO)
    keep(
        moved(world["task-4"], status="completed", output=[resulting_activity("proc-1")]),
        CBO,
    )
    return world


def people(client: TestClient) -> None:
    """The network's Denise Rivera, plus José Núñez and Ana Maria Oliveira."""
    seed_network(client)
    put(
        client,
        patient(
            "pat-2002",
            "Núñez",
            ["José"],
            identifier=[{"system": MRN, "value": "MRN-0051177"}],
            birthDate="1959-11-02",
        ),
    )
    put(
        client,
        patient(
            "pat-3003",
            "Oliveira",
            ["Ana", "Maria"],
            identifier=[{"value": "LOCAL-7"}],
            birthDate="2001",
        ),
    )


ALL_TASKS = ["task-1", "task-2", "task-3", "task-4"]


# -- Task ---------------------------------------------------------------------------------------


def test_search_task__by_id_and_profile(client: TestClient) -> None:
    referral_world(client)

    check_cases(
        client,
        "Task",
        [
            ({"_id": "task-1"}, ["task-1"]),
            ({"_id": "task-1,task-3"}, ["task-1", "task-3"]),  # a comma means OR
            ({"_id": "task-2,no-such-task"}, ["task-2"]),
            ({"_id": "no-such-task"}, []),
            ({"_id": FOOD}, []),  # an id of another type
            ({"_profile": TASK_PROFILE}, ["task-1", "task-2", "task-4"]),  # task-3 claims none
            ({"_profile": SR_PROFILE}, []),
        ],
    )


def test_search_task__by_last_updated_with_each_prefix(client: TestClient) -> None:
    world = referral_world(client)
    stamps = sorted((last_updated(world[t]), t) for t in ALL_TASKS)
    assert len({stamp for stamp, _ in stamps}) == 4
    (_, first), (middle, second), (_, third), (newest, fourth) = stamps

    check_cases(
        client,
        "Task",
        [
            ({"_lastUpdated": middle}, [second]),
            ({"_lastUpdated": f"eq{middle}"}, [second]),
            ({"_lastUpdated": f"gt{middle}"}, [third, fourth]),
            ({"_lastUpdated": f"ge{middle}"}, [second, third, fourth]),
            ({"_lastUpdated": f"lt{middle}"}, [first]),
            ({"_lastUpdated": f"le{middle}"}, [first, second]),
            ({"_lastUpdated": f"gt{newest}"}, []),
            ({"_lastUpdated": "gt2000-01-01"}, ALL_TASKS),
            ({"_lastUpdated": "lt2000-01-01"}, []),
            ([("_lastUpdated", f"gt{middle}"), ("_lastUpdated", f"lt{newest}")], [third]),
        ],
    )


def test_search_task__by_code_and_status_in_every_token_form(client: TestClient) -> None:
    referral_world(client)

    check_cases(
        client,
        "Task",
        [
            ({"code": "fulfill"}, ALL_TASKS),
            ({"code": f"{TASK_CODE}|fulfill"}, ALL_TASKS),
            ({"code": f"{TASK_CODE}|"}, ALL_TASKS),
            ({"code": "|fulfill"}, []),  # the stored coding has a system
            ({"code": "http://example.org/other|fulfill"}, []),
            ({"code": "approve"}, []),
            ({"status": "requested"}, ["task-1", "task-2"]),
            ({"status": "draft,completed"}, ["task-3", "task-4"]),  # a comma means OR
            ({"status": "|requested"}, ["task-1", "task-2"]),  # a code has no system
            ({"status": "accepted"}, []),
            ({"status": "requested", "owner": OTHER_CBO}, ["task-2"]),  # parameters AND
            ([("status", "requested"), ("status", "draft")], []),  # repeated parameters AND
        ],
    )


def test_search_task__by_patient_subject_and_requester(client: TestClient) -> None:
    referral_world(client)
    by_dr_okafor = ["task-1", "task-3", "task-4"]

    check_cases(
        client,
        "Task",
        [
            ({"patient": "Patient/pat-1001"}, ["task-1", "task-3", "task-4"]),
            ({"patient": "pat-2002"}, ["task-2"]),
            ({"patient": f"{LOCAL_BASE}/Patient/pat-2002"}, ["task-2"]),
            ({"patient": "pat-1001,pat-2002"}, ALL_TASKS),
            ({"patient:Patient": "pat-2002"}, ["task-2"]),
            ({"patient": "pat-3003"}, []),
            ({"subject": "Patient/pat-2002"}, ["task-2"]),
            ({"subject": "pat-1001"}, ["task-1", "task-3", "task-4"]),
            ({"subject": "Group/pat-1001"}, []),
            ({"requester": "PractitionerRole/prr-dr-okafor"}, by_dr_okafor),
            ({"requester": "prr-dr-okafor"}, by_dr_okafor),
            ({"requester": HOSPITAL}, ["task-2"]),
            ({"requester": "mercy-hospital"}, ["task-2"]),
            ({"requester": f"{LOCAL_BASE}/{HOSPITAL}"}, ["task-2"]),
            ({"requester": "Practitioner/dr-okafor"}, []),
        ],
    )


def test_search_task__by_owner_and_owner_missing(client: TestClient) -> None:
    referral_world(client)

    check_cases(
        client,
        "Task",
        [
            ({"owner": CBO}, ["task-1", "task-4"]),
            ({"owner": "northside-housing"}, ["task-2"]),
            ({"owner:Organization": "eastside-food-bank"}, ["task-1", "task-4"]),
            ({"owner": f"{CBO},{OTHER_CBO}"}, ["task-1", "task-2", "task-4"]),
            ({"owner:missing": "true"}, ["task-3"]),
            ({"owner:missing": "false"}, ["task-1", "task-2", "task-4"]),
            ({"owner": HOSPITAL}, []),
        ],
    )


def test_search_task__by_focus_output_based_on_and_part_of(client: TestClient) -> None:
    referral_world(client)

    check_cases(
        client,
        "Task",
        [
            ({"focus": f"ServiceRequest/{FOOD}"}, ["task-1", "task-3", "task-4"]),
            ({"focus": HOUSING}, ["task-2"]),
            ({"focus": f"{LOCAL_BASE}/ServiceRequest/{HOUSING}"}, ["task-2"]),
            ({"focus": f"ServiceRequest/{TRANSPORT}"}, []),
            ({"output": "Procedure/proc-1"}, ["task-4"]),
            ({"output": "proc-1"}, ["task-4"]),
            ({"output": "Procedure/proc-2"}, []),
            ({"based-on": f"ServiceRequest/{FOOD}"}, ["task-3"]),
            ({"based-on": FOOD}, ["task-3"]),
            ({"part-of": "Task/task-1"}, ["task-3"]),
            ({"part-of": "task-1"}, ["task-3"]),
            ({"part-of": "task-3"}, []),
        ],
    )


def test_search_task__by_authored_on(client: TestClient) -> None:
    referral_world(client)

    check_cases(
        client,
        "Task",
        [
            ({"authored-on": "2025-03-10"}, ["task-1"]),  # 14:06-05:00 is 19:06Z that day
            ({"authored-on": "2025-03-10T19:06:00Z"}, ["task-1"]),
            ({"authored-on": "2025-03-10T14:06:00-05:00"}, ["task-1"]),
            ({"authored-on": "2025-03"}, ["task-1", "task-3", "task-4"]),
            ({"authored-on": "2025-04"}, ["task-2"]),
            ({"authored-on": "ge2025-03-11"}, ["task-2", "task-3", "task-4"]),
            ({"authored-on": "gt2025-03-11"}, ["task-2", "task-4"]),
            ({"authored-on": "lt2025-03-11"}, ["task-1"]),
            ({"authored-on": "le2025-03-11"}, ["task-1", "task-3"]),
            (
                [("authored-on", "ge2025-03-11"), ("authored-on", "lt2025-04-01")],
                ["task-3", "task-4"],
            ),
            ({"authored-on": "2024"}, []),
        ],
    )


# -- ServiceRequest -----------------------------------------------------------------------------


def test_search_service_request__by_id_last_updated_profile_and_tokens(
    client: TestClient,
) -> None:
    world = referral_world(client, with_tasks=False)
    housing_updated = last_updated(world[HOUSING])

    check_cases(
        client,
        "ServiceRequest",
        [
            ({"_id": f"{FOOD},{TRANSPORT}"}, [FOOD, TRANSPORT]),
            ({"_lastUpdated": housing_updated}, [HOUSING]),
            ({"_lastUpdated": f"gt{housing_updated}"}, [TRANSPORT]),
            ({"_lastUpdated": f"lt{housing_updated}"}, [FOOD]),
            ({"_profile": SR_PROFILE}, [FOOD, TRANSPORT]),
            ({"_profile": TASK_PROFILE}, []),
            ({"category": "food-insecurity"}, [FOOD]),
            ({"category": f"{TEMP}|housing-instability"}, [HOUSING]),
            ({"category": f"{TEMP}|"}, [FOOD, HOUSING, TRANSPORT]),
            ({"category": "|food-insecurity"}, []),
            ({"category": "http://example.org/x|food-insecurity"}, []),
            ({"category": "food-insecurity,transportation-insecurity"}, [FOOD, TRANSPORT]),
            ({"code": f"{SNOMED}|467771000124109"}, [FOOD]),
            ({"code": "710824005"}, [HOUSING]),
            ({"code": f"{SNOMED}|"}, [FOOD, HOUSING, TRANSPORT]),
            ({"intent": "order"}, [FOOD, TRANSPORT]),
            ({"intent": "plan"}, [HOUSING]),
            ({"status": "active"}, [FOOD]),
            ({"status": "on-hold,completed"}, [HOUSING, TRANSPORT]),
            ({"status:not": "active"}, [HOUSING, TRANSPORT]),
            ({"status": "revoked"}, []),
        ],
    )


def test_search_service_request__by_reference_parameters(client: TestClient) -> None:
    referral_world(client, with_tasks=False)

    check_cases(
        client,
        "ServiceRequest",
        [
            ({"patient": "pat-1001"}, [FOOD, TRANSPORT]),
            ({"patient": "Patient/pat-2002"}, [HOUSING]),
            ({"subject": f"{LOCAL_BASE}/Patient/pat-2002"}, [HOUSING]),
            ({"subject": "pat-1001"}, [FOOD, TRANSPORT]),
            ({"requester": "PractitionerRole/prr-dr-okafor"}, [FOOD, TRANSPORT]),
            ({"requester": HOSPITAL}, [HOUSING]),
            ({"requester": "mercy-hospital"}, [HOUSING]),
            ({"performer": CBO}, [FOOD, TRANSPORT]),
            ({"performer": "northside-housing"}, [HOUSING]),
            ({"performer": EXTERNAL_ORG}, [TRANSPORT]),
            ({"performer": "Organization/456"}, []),  # only the external one exists
            ({"supporting-info": "Condition/cond-housing"}, [HOUSING]),
            ({"supporting-info": "cond-housing"}, [HOUSING]),
            ({"supporting-info": EXTERNAL_CONSENT}, [HOUSING]),
            ({"supporting-info": "Consent/consent-9"}, []),  # stored as an external reference
            ({"supporting-info": "consent-9"}, []),
            ({"supporting-info:missing": "true"}, [FOOD, TRANSPORT]),
        ],
    )


def test_search_service_request__by_authored_and_occurrence(client: TestClient) -> None:
    referral_world(client, with_tasks=False)

    check_cases(
        client,
        "ServiceRequest",
        [
            ({"authored": "2025-03-10"}, [FOOD]),
            ({"authored": "gt2025-03-31"}, [HOUSING]),
            ({"authored": "lt2025-03-01"}, [TRANSPORT]),
            ({"authored": "2025"}, [FOOD, HOUSING, TRANSPORT]),
            ({"occurrence": "2025-03-20"}, [FOOD]),
            ({"occurrence": "2025-04"}, [HOUSING]),  # the whole period lies in April
            ({"occurrence": "ge2025-04-10"}, [HOUSING]),
            ({"occurrence": "lt2025-04-01"}, [FOOD]),
            ({"occurrence": "2025-04-10"}, []),  # eq needs the period inside that day
            ({"occurrence:missing": "true"}, [TRANSPORT]),
        ],
    )


# -- Procedure ----------------------------------------------------------------------------------


def test_search_procedure__by_each_parameter(client: TestClient) -> None:
    referral_world(client, with_tasks=False)

    check_cases(
        client,
        "Procedure",
        [
            ({"_id": "proc-1,proc-2"}, ["proc-1", "proc-2"]),
            ({"_id": "proc-2"}, ["proc-2"]),
            ({"based-on": f"ServiceRequest/{FOOD}"}, ["proc-1"]),
            ({"based-on": HOUSING}, ["proc-2"]),
            ({"based-on": f"{LOCAL_BASE}/ServiceRequest/{HOUSING}"}, ["proc-2"]),
            ({"based-on": TRANSPORT}, []),
            ({"category": "food-insecurity"}, ["proc-1"]),
            ({"category": f"{TEMP}|housing-instability"}, ["proc-2"]),
            ({"category": f"{TEMP}|"}, ["proc-1", "proc-2"]),
            ({"patient": "pat-1001"}, ["proc-1"]),
            ({"patient": "Patient/pat-2002"}, ["proc-2"]),
            ({"performer": CBO}, ["proc-1"]),
            ({"performer": "northside-housing"}, ["proc-2"]),
            ({"performer": HOSPITAL}, []),
            ({"status": "completed"}, ["proc-1"]),
            ({"status": "in-progress,completed"}, ["proc-1", "proc-2"]),
            ({"code": f"{SNOMED}|467771000124109"}, ["proc-1"]),
            ({"code": "710824005"}, ["proc-2"]),
            ({"date": "2025-03-14"}, ["proc-1"]),
            ({"date": "lt2025-04-01"}, ["proc-1"]),
            ({"date": "gt2025-04-01"}, ["proc-2"]),  # an open-ended period from 2025-04-06
            ({"date": "2025-02"}, []),
        ],
    )


# -- Patient, Organization, HealthcareService ---------------------------------------------------


def test_search_patient__by_id_identifier_and_birthdate(client: TestClient) -> None:
    people(client)

    check_cases(
        client,
        "Patient",
        [
            ({"_id": "pat-1001,pat-3003"}, ["pat-1001", "pat-3003"]),
            ({"identifier": "MRN-0048213"}, ["pat-1001"]),
            ({"identifier": f"{MRN}|MRN-0051177"}, ["pat-2002"]),
            ({"identifier": f"{MRN}|"}, ["pat-1001", "pat-2002"]),
            ({"identifier": "|LOCAL-7"}, ["pat-3003"]),
            ({"identifier": "|MRN-0048213"}, []),
            ({"identifier": "http://example.org/mrn|MRN-0048213"}, []),
            ({"birthdate": "1986-03-14"}, ["pat-1001"]),
            ({"birthdate": "1959"}, ["pat-2002"]),
            ({"birthdate": "lt1990-01-01"}, ["pat-1001", "pat-2002"]),
            ({"birthdate": "ge2001"}, ["pat-3003"]),
            ({"birthdate": "1986-03-15"}, []),
        ],
    )


def test_search_patient__by_name_family_and_given(client: TestClient) -> None:
    people(client)

    check_cases(
        client,
        "Patient",
        [
            ({"family": "Rivera"}, ["pat-1001"]),
            ({"family": "rivera"}, ["pat-1001"]),  # case-insensitive
            ({"family": "RIV"}, ["pat-1001"]),  # starts-with
            ({"family": "nunez"}, ["pat-2002"]),  # accent-insensitive
            ({"family": "NÚÑ"}, ["pat-2002"]),
            ({"family": "ivera"}, []),  # not a prefix
            ({"given": "jose"}, ["pat-2002"]),
            ({"given": "den"}, ["pat-1001"]),
            ({"given": "rivera"}, []),  # a family name is not a given name
            ({"name": "maria"}, ["pat-3003"]),  # any part of the name
            ({"name": "oliv"}, ["pat-3003"]),
            ({"name": "den,jos"}, ["pat-1001", "pat-2002"]),
            ({"family:exact": "Rivera"}, ["pat-1001"]),
            ({"family:exact": "rivera"}, []),
            ({"family:exact": "Riv"}, []),
            ({"family:exact": "Núñez"}, ["pat-2002"]),
            ({"family:exact": "Nunez"}, []),
            ({"family:contains": "ver"}, ["pat-1001"]),
            ({"name:contains": "IVE"}, ["pat-1001", "pat-3003"]),
            ({"given:contains": "ÓS"}, ["pat-2002"]),
            ({"name:contains": "%"}, []),  # LIKE wildcards are literal text
            ({"name": "_"}, []),
        ],
    )


def test_search_organization__by_id_identifier_name_and_type(client: TestClient) -> None:
    seed_network(client)
    put(
        client,
        {
            "resourceType": "Organization",
            "id": "mercy-hospital",
            "active": True,
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
            "type": [coded(ORG_TYPE, "prov")],
            "name": "Mercy Hospital",
        },
    )
    put(
        client,
        {
            "resourceType": "Organization",
            "id": "eastside-food-bank",
            "active": True,
            "type": [coded(ORG_TYPE, "cg")],
            "name": "Eastside Community Food Bank",
        },
        CBO,
    )
    put(
        client,
        {
            "resourceType": "Organization",
            "id": "northside-housing",
            "active": True,
            "type": [coded(ORG_TYPE, "cg")],
            "name": "Northside Housing Services",
            "alias": ["NHS Housing"],
        },
        OTHER_CBO,
    )
    put(client, {"resourceType": "Organization", "id": "acme", "name": "Acme, Inc"})
    hospital, food_bank, housing = "mercy-hospital", "eastside-food-bank", "northside-housing"

    check_cases(
        client,
        "Organization",
        [
            ({"_id": f"{hospital},{housing}"}, [hospital, housing]),
            ({"identifier": "http://hl7.org/fhir/sid/us-npi|1234567893"}, [hospital]),
            ({"identifier": "1234567893"}, [hospital]),
            ({"identifier": "http://hl7.org/fhir/sid/us-npi|"}, [hospital]),
            ({"name": "eastside"}, [food_bank]),
            ({"name": "MERCY"}, [hospital]),
            ({"name": "community"}, []),  # starts-with on the whole name
            ({"name:contains": "community"}, [food_bank]),
            ({"name": "nhs"}, [housing]),  # aliases count as names
            ({"name:exact": "Mercy Hospital"}, [hospital]),
            ({"name:exact": "mercy hospital"}, []),
            ({"name:exact": "Acme\\, Inc"}, ["acme"]),  # an escaped comma is part of the value
            ({"name": "acme\\,"}, ["acme"]),
            ({"name": "acme,mercy"}, ["acme", hospital]),  # an unescaped comma means OR
            ({"type": "cg"}, [food_bank, housing]),
            ({"type": f"{ORG_TYPE}|prov"}, [hospital]),
            ({"type": "|prov"}, []),
        ],
    )


def test_search_healthcare_service__by_each_parameter(client: TestClient) -> None:
    seed_network(client)
    for location_id in ("loc-east", "loc-north"):
        put(client, {"resourceType": "Location", "id": location_id, "name": location_id})
    service_type = "http://terminology.hl7.org/CodeSystem/service-type"
    put(
        client,
        {
            "resourceType": "HealthcareService",
            "id": "eastside-food-pantry",
            "active": True,
            "providedBy": {"reference": CBO},
            "category": [coded(TEMP, "food-insecurity")],
            "type": [coded(service_type, "17")],
            "location": [{"reference": "Location/loc-east"}],
            "name": "Food pantry enrollment",
        },
        CBO,
    )
    put(
        client,
        {
            "resourceType": "HealthcareService",
            "id": "northside-rental-aid",
            "active": False,
            "providedBy": {"reference": OTHER_CBO},
            "category": [coded(TEMP, "housing-instability")],
            "type": [coded(service_type, "59")],
            "location": [{"reference": "Location/loc-north"}],
            "name": "Emergency rental assistance",
        },
        OTHER_CBO,
    )
    pantry, rental = "eastside-food-pantry", "northside-rental-aid"

    check_cases(
        client,
        "HealthcareService",
        [
            ({"_id": rental}, [rental]),
            ({"organization": CBO}, [pantry]),
            ({"organization": "northside-housing"}, [rental]),
            ({"organization": f"{LOCAL_BASE}/{OTHER_CBO}"}, [rental]),
            ({"service-category": "food-insecurity"}, [pantry]),
            ({"service-category": f"{TEMP}|housing-instability"}, [rental]),
            ({"service-category": f"{TEMP}|"}, [pantry, rental]),
            ({"type": f"{service_type}|59"}, [rental]),
            ({"type": "17"}, [pantry]),
            ({"location": "Location/loc-east"}, [pantry]),
            ({"location": "loc-north"}, [rental]),
            ({"active": "true"}, [pantry]),
            ({"active": "false"}, [rental]),
            ({"active": "true,false"}, [pantry, rental]),
        ],
    )


def test_search_index__covers_resources_created_by_post_and_by_transaction(
    client: TestClient,
) -> None:
    seed_network(client)
    new_patient = patient("unused", "Whitfield", ["Lena"], identifier=[{"value": "NEW-1"}])
    new_request, new_task = service_request(), task()
    for resource in (new_patient, new_request, new_task):
        del resource["id"]  # the server assigns ids to created resources
    sr_url = "urn:uuid:0f6c7d1e-4a55-4e2b-9c1e-2d6f1b7a9e01"
    new_task["focus"] = {"reference": sr_url}
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": sr_url,
                "resource": new_request,
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "fullUrl": "urn:uuid:5e0b1a7c-93d2-4f61-8a4e-7c3b2d1e0f99",
                "resource": new_task,
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }

    created = client.post("/fhir/Patient", json=new_patient, headers=as_org(HOSPITAL))
    written = client.post("/fhir", json=transaction, headers=as_org(HOSPITAL))

    assert created.status_code == 201, created.text
    assert written.status_code == 200, written.text
    sr_id, task_id = (e["response"]["location"].split("/")[1] for e in written.json()["entry"])
    by_identifier = search(client, "Patient", {"identifier": "NEW-1"})
    by_focus = search(
        client, "Task", {"focus": f"ServiceRequest/{sr_id}", "_include": "Task:focus"}
    )
    assert matched(by_identifier) == [created.json()["id"]]
    assert matched(by_focus) == [task_id]
    assert included(by_focus) == [f"ServiceRequest/{sr_id}"]


# -- the CBO's inbox poll -----------------------------------------------------------------------


def test_inbox_poll__follows_status_changes_owners_and_deletes(client: TestClient) -> None:
    """``Task?owner=Organization/x&status=…&_lastUpdated=gt…``, the poll a CBO runs, starts from
    task_party's (owner, status, lastUpdated) index: it must match exactly what the criteria
    say as Tasks are accepted, reassigned and deleted, for the CBO and for an administrator."""
    seed_network(client)
    put(client, service_request())
    put(
        client,
        {
            "resourceType": "PractitionerRole",
            "id": "prr-food-intake",
            "active": True,
            "organization": {"reference": CBO},
        },
    )
    since = put(client, task("t-before", status="draft"))["meta"]["lastUpdated"]
    put(client, task("t-new"))
    put(client, task("t-role", owner={"reference": "PractitionerRole/prr-food-intake"}))
    put(client, task("t-other", owner={"reference": OTHER_CBO}))
    put(client, task("t-draft", status="draft"))
    accepted = put(client, task("t-accepted"))
    mark = accepted["meta"]["lastUpdated"]

    def poll(params: dict[str, str], expected: list[str]) -> None:
        check_cases(client, "Task", [(params, expected)])  # as the administrator
        check_cases(client, "Task", [(params, expected)], org=CBO)

    poll(
        {"owner": CBO, "status": "requested", "_lastUpdated": f"gt{since}"}, ["t-new", "t-accepted"]
    )
    poll({"owner": CBO, "status": "draft", "_lastUpdated": f"gt{since}"}, ["t-draft"])

    put(client, moved(accepted, status="accepted"), org=CBO)
    delete(client, "Task", "t-draft")
    put(client, task("t-before", status="draft", owner={"reference": OTHER_CBO}))

    poll({"owner": CBO, "status": "requested", "_lastUpdated": f"gt{since}"}, ["t-new"])
    poll({"owner": CBO, "status": "requested", "_lastUpdated": f"gt{mark}"}, [])
    poll({"owner": CBO, "status": "accepted", "_lastUpdated": f"gt{mark}"}, ["t-accepted"])
    poll({"owner": CBO, "_lastUpdated": f"le{mark}"}, ["t-new"])
    poll({"owner": CBO, "status": "draft"}, [])
    poll({"owner": CBO, "status": "requested,accepted"}, ["t-new", "t-accepted"])
    poll({"owner": CBO, "status": "|requested"}, ["t-new"])
    poll({"owner": "PractitionerRole/prr-food-intake", "status": "requested"}, ["t-role"])
    check_cases(  # Tasks another CBO owns: the administrator sees them, the CBO does not
        client,
        "Task",
        [
            ({"owner": OTHER_CBO, "status": "draft", "_lastUpdated": f"gt{mark}"}, ["t-before"]),
            ({"owner": f"{CBO},{OTHER_CBO}", "status": "requested"}, ["t-new", "t-other"]),
            ({"owner": CBO, "status:not": "requested"}, ["t-accepted"]),
        ],
    )
    check_cases(
        client,
        "Task",
        [
            ({"owner": OTHER_CBO, "status": "requested"}, []),
            ({"owner": f"{CBO},{OTHER_CBO}", "status": "requested"}, ["t-new"]),
        ],
        org=CBO,
    )


def test_inbox_poll__pages_in_last_updated_order_both_ways(client: TestClient) -> None:
    """An inbox poll is ordered by the Tasks' lastUpdated as any search is, across pages, with
    ``_sort`` either way, and by a date parameter."""
    seed_network(client)
    put(client, service_request())
    written = [f"t-{n}" for n in range(5)]

    def authored(n: int) -> dict[str, Any]:
        return task(written[n], authoredOn=f"2025-03-1{n}T14:06:00-05:00")

    for n in range(5):
        put(client, authored(n))
    put(client, task("t-elsewhere", owner={"reference": OTHER_CBO}))
    put(client, authored(1) | {"description": "touched, so now the newest"})
    newest_last = [written[0], *written[2:], written[1]]

    for org in (ADMIN, CBO):
        for sort, expected in (({}, newest_last), ({"_sort": "-_lastUpdated"}, newest_last[::-1])):
            pages = [search(client, "Task", {"owner": CBO, "_count": "2", **sort}, org=org)]
            while (url := link(pages[-1], "next")) is not None:
                pages.append(follow(client, url, org))
            assert [task_id for page in pages for task_id in in_order(page)] == expected
            assert all(page["total"] == 5 for page in pages)
        by_date = search(client, "Task", {"owner": CBO, "_sort": "-authored-on"}, org=org)
        assert in_order(by_date) == written[::-1]


def test_inbox_poll__sqlite_starts_from_the_inbox_index(client: TestClient, engine: Engine) -> None:
    """The poll's count and page read task_party's inbox index, not every recent Task, and
    no owner or status index rows."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans with its own statistics")
    seed_network(client)
    put(client, service_request())
    since = put(client, task("t-1"))["meta"]["lastUpdated"]
    put(client, task("t-2"))
    with selects_naming(engine, "task_party") as searches:
        found = search(
            client,
            "Task",
            {"owner": CBO, "status": "requested", "_lastUpdated": f"gt{since}"},
            org=CBO,
        )
    assert matched(found) == ["t-2"]
    assert searches  # the page, and the count when the page is full
    for steps in sqlite_plans(engine, searches):
        assert "ix_task_party_inbox" in steps, steps
        assert "search_reference" not in steps, steps  # the owner is task_party's own column
        assert "search_token" not in steps, steps


# -- reference forms ----------------------------------------------------------------------------


def test_search_reference__relative_bare_and_absolute_urls(client: TestClient) -> None:
    """Our own base means a local reference, on both sides; any other base only itself."""
    seed_network(client)
    put(client, service_request())
    put(client, {"resourceType": "Organization", "id": "456", "name": "Local 456"})
    put(client, task("t-relative", owner={"reference": CBO}))
    put(client, task("t-own-base", owner={"reference": f"{LOCAL_BASE}/{CBO}"}))
    put(client, task("t-local-456", owner={"reference": "Organization/456"}))
    put(client, task("t-external-456", owner={"reference": EXTERNAL_ORG}))

    check_cases(
        client,
        "Task",
        [
            ({"owner": CBO}, ["t-relative", "t-own-base"]),
            ({"owner": "eastside-food-bank"}, ["t-relative", "t-own-base"]),
            ({"owner": f"{LOCAL_BASE}/{CBO}"}, ["t-relative", "t-own-base"]),
            ({"owner": f"{LOCAL_BASE}/{CBO}/_history/1"}, ["t-relative", "t-own-base"]),
            ({"owner": "Organization/456"}, ["t-local-456"]),
            ({"owner": "456"}, ["t-local-456"]),
            ({"owner": f"{LOCAL_BASE}/Organization/456"}, ["t-local-456"]),
            ({"owner": EXTERNAL_ORG}, ["t-external-456"]),
            ({"owner": f"{EXTERNAL_BASE}/Organization/457"}, []),
            ({"owner": "https://other.example.org/fhir/Organization/456"}, []),
            ({"owner": f"{EXTERNAL_ORG},Organization/456"}, ["t-external-456", "t-local-456"]),
        ],
    )


# -- _include and _revinclude -------------------------------------------------------------------


def test_search_include__task_focus_and_output(client: TestClient) -> None:
    referral_world(client)

    for via in ("GET", "POST"):
        bundle = search(
            client,
            "Task",
            [("_id", "task-4"), ("_include", "Task:focus"), ("_include", "Task:output")],
            via=via,
        )

        assert matched(bundle) == ["task-4"]
        assert included(bundle) == ["Procedure/proc-1", f"ServiceRequest/{FOOD}"]
        assert bundle["total"] == 1
        for entry in entries(bundle, "include"):
            resource = entry["resource"]
            assert entry["fullUrl"] == f"{LOCAL_BASE}/{resource['resourceType']}/{resource['id']}"


def test_search_include__targets_appear_once_and_are_not_counted(client: TestClient) -> None:
    referral_world(client)

    every = search(
        client,
        "Task",
        [("_include", "Task:focus"), ("_include", "Task:patient"), ("_include", "Task:output")],
    )
    drafts = search(client, "Task", {"status": "draft", "_include": "Task:patient"})
    part_of = search(client, "Task", {"_include": "Task:part-of"})  # task-3 is part of task-1

    assert matched(every) == ALL_TASKS
    assert every["total"] == 4
    # three Tasks share the food SR and pat-1001: each is included once
    assert included(every) == [
        "Patient/pat-1001",
        "Patient/pat-2002",
        "Procedure/proc-1",
        f"ServiceRequest/{FOOD}",
        f"ServiceRequest/{HOUSING}",
    ]
    assert len(every["entry"]) == 4 + 5
    assert matched(drafts) == ["task-3"]
    assert included(drafts) == ["Patient/pat-1001"]
    assert drafts["total"] == 1
    # a target that is itself a match is not repeated as an include
    assert matched(part_of) == ALL_TASKS
    assert included(part_of) == []
    assert [e["resource"]["id"] for e in part_of["entry"]].count("task-1") == 1


def test_search_include__service_request_references(client: TestClient) -> None:
    referral_world(client)

    def includes_of(include: str) -> list[str]:
        bundle = search(client, "ServiceRequest", {"_id": f"{FOOD},{HOUSING}", "_include": include})
        assert matched(bundle) == [FOOD, HOUSING]
        assert bundle["total"] == 2
        return included(bundle)

    # the Consent on another server is not ours to include
    assert includes_of("ServiceRequest:supporting-info") == ["Condition/cond-housing"]
    assert includes_of("ServiceRequest:patient") == ["Patient/pat-1001", "Patient/pat-2002"]
    assert includes_of("ServiceRequest:requester") == [
        HOSPITAL,
        "PractitionerRole/prr-dr-okafor",
    ]
    assert includes_of("ServiceRequest:requester:Organization") == [HOSPITAL]
    assert includes_of("ServiceRequest:performer") == [CBO, OTHER_CBO]

    # the same Patient reached through two include parameters is included once
    both = search(
        client,
        "ServiceRequest",
        [
            ("_id", f"{FOOD},{TRANSPORT}"),
            ("_include", "ServiceRequest:patient"),
            ("_include", "ServiceRequest:subject"),
        ],
    )
    assert included(both) == ["Patient/pat-1001"]
    assert len(both["entry"]) == 3


def test_search_revinclude__finds_what_points_at_each_match(client: TestClient) -> None:
    referral_world(client)

    food = search(
        client,
        "ServiceRequest",
        [("_id", FOOD), ("_revinclude", "Task:focus"), ("_revinclude", "Procedure:based-on")],
    )
    procedures = search(client, "Procedure", {"_revinclude": "Task:output"})
    patients = search(client, "Patient", {"_id": "pat-2002", "_revinclude": "Task:patient"})
    with_requests = search(client, "Patient", {"_revinclude": "ServiceRequest:patient"})
    conditions = search(client, "Condition", {"_revinclude": "ServiceRequest:supporting-info"})
    based_on = search(client, "Procedure", {"_include": "Procedure:based-on"})

    assert matched(food) == [FOOD]
    assert included(food) == ["Procedure/proc-1", "Task/task-1", "Task/task-3", "Task/task-4"]
    assert food["total"] == 1
    assert matched(procedures) == ["proc-1", "proc-2"]
    assert included(procedures) == ["Task/task-4"]
    assert included(patients) == ["Task/task-2"]
    assert matched(with_requests) == ["pat-1001", "pat-2002"]
    assert included(with_requests) == [
        f"ServiceRequest/{FOOD}",
        f"ServiceRequest/{HOUSING}",
        f"ServiceRequest/{TRANSPORT}",
    ]
    assert with_requests["total"] == 2
    assert matched(conditions) == ["cond-housing"]
    assert included(conditions) == [f"ServiceRequest/{HOUSING}"]
    assert included(based_on) == [f"ServiceRequest/{FOOD}", f"ServiceRequest/{HOUSING}"]


def test_search_include__practitioner_role_organization_and_practitioner(
    client: TestClient,
) -> None:
    seed_network(client)
    put(
        client,
        {"resourceType": "Practitioner", "id": "lee", "name": [{"family": "Lee"}]},
        CBO,
    )
    put(
        client,
        {
            "resourceType": "PractitionerRole",
            "id": "prr-lee",
            "active": True,
            "practitioner": {"reference": "Practitioner/lee"},
            "organization": {"reference": CBO},
        },
        CBO,
    )

    forward = search(
        client,
        "PractitionerRole",
        [
            ("_include", "PractitionerRole:organization"),
            ("_include", "PractitionerRole:practitioner"),
        ],
    )
    one = search(
        client,
        "PractitionerRole",
        {"organization": "eastside-food-bank", "_include": "PractitionerRole:practitioner"},
    )
    by_org = search(
        client,
        "Organization",
        {"_id": "mercy-hospital", "_revinclude": "PractitionerRole:organization"},
    )
    by_practitioner = search(
        client, "Practitioner", {"_revinclude": "PractitionerRole:practitioner"}
    )

    assert matched(forward) == ["prr-dr-okafor", "prr-lee"]
    assert included(forward) == [CBO, HOSPITAL, "Practitioner/dr-okafor", "Practitioner/lee"]
    assert forward["total"] == 2
    assert matched(one) == ["prr-lee"]
    assert included(one) == ["Practitioner/lee"]
    assert matched(by_org) == ["mercy-hospital"]
    assert included(by_org) == ["PractitionerRole/prr-dr-okafor"]
    assert matched(by_practitioner) == ["dr-okafor", "lee"]
    assert included(by_practitioner) == [
        "PractitionerRole/prr-dr-okafor",
        "PractitionerRole/prr-lee",
    ]


# -- _sort, paging, _summary and _total ---------------------------------------------------------


def test_search_sort__by_a_date_parameter_and_last_updated_both_ways(client: TestClient) -> None:
    world = referral_world(client)

    assert in_order(search(client, "Task", {"_sort": "authored-on"})) == [
        "task-1",
        "task-3",
        "task-4",
        "task-2",
    ]
    assert in_order(search(client, "Task", {"_sort": "-authored-on"})) == [
        "task-2",
        "task-4",
        "task-3",
        "task-1",
    ]
    # a resource without the date sorts last either way
    assert in_order(search(client, "ServiceRequest", {"_sort": "occurrence"})) == [
        FOOD,
        HOUSING,
        TRANSPORT,
    ]
    assert in_order(search(client, "ServiceRequest", {"_sort": "-occurrence"})) == [
        HOUSING,
        FOOD,
        TRANSPORT,
    ]
    assert in_order(search(client, "ServiceRequest", {"_sort": "-authored"})) == [
        HOUSING,
        FOOD,
        TRANSPORT,
    ]

    world["task-1"] = put(client, moved(world["task-1"], status="accepted"), CBO)
    oldest_first = [t for _, t in sorted((last_updated(world[t]), t) for t in ALL_TASKS)]
    assert oldest_first == ["task-2", "task-3", "task-4", "task-1"]
    assert in_order(search(client, "Task", {"_sort": "_lastUpdated"})) == oldest_first
    assert in_order(search(client, "Task", {"_sort": "-_lastUpdated"})) == oldest_first[::-1]


def pager_patients(client: TestClient, count: int) -> list[str]:
    """``count`` Patients named Pager, returned in the order they were written."""
    ids = [f"pager-{n:02d}" for n in range(count)]
    for patient_id in ids:
        put(client, patient(patient_id, "Pager", [patient_id]))
    return ids


def walk(client: TestClient, bundle: dict[str, Any], relation: str) -> list[dict[str, Any]]:
    pages = [bundle]
    while (url := link(pages[-1], relation)) is not None:
        pages.append(follow(client, url))
        assert len(pages) < 20, "the links never end"
    return pages


def test_search_paging__next_and_previous_links_cover_every_match_once(
    client: TestClient,
) -> None:
    written = pager_patients(client, 7)
    put(client, patient("someone-else", "Other", ["Not", "Paged"]))

    for via in ("GET", "POST"):
        first = search(client, "Patient", {"family": "pager", "_count": "3"}, via=via)
        forward = walk(client, first, "next")

        assert [len(in_order(page)) for page in forward] == [3, 3, 1]
        seen = [patient_id for page in forward for patient_id in in_order(page)]
        assert sorted(seen) == written
        assert len(seen) == len(set(seen))
        assert all(page["total"] == 7 for page in forward)
        assert link(first, "previous") is None
        assert link(forward[-1], "next") is None
        self_query = query_of(str(link(forward[1], "self")))
        assert ("family", "pager") in self_query
        assert ("_count", "3") in self_query
        assert ("_offset", "3") in self_query

        backward = walk(client, forward[-1], "previous")
        assert [in_order(page) for page in backward] == [in_order(page) for page in forward[::-1]]


def test_search_paging__keeps_the_sort_order_across_pages(client: TestClient) -> None:
    written = pager_patients(client, 5)

    first = search(
        client, "Patient", {"family": "pager", "_sort": "-_lastUpdated", "_count": "2"}, via="POST"
    )
    pages = walk(client, first, "next")

    assert [patient_id for page in pages for patient_id in in_order(page)] == written[::-1]
    assert ("_sort", "-_lastUpdated") in query_of(str(link(first, "next")))


def test_search_paging__includes_follow_each_page(client: TestClient) -> None:
    referral_world(client)

    first = search(
        client, "Task", {"_sort": "authored-on", "_count": "2", "_include": "Task:patient"}
    )
    second = follow(client, str(link(first, "next")))

    assert in_order(first) == ["task-1", "task-3"]
    assert included(first) == ["Patient/pat-1001"]
    assert in_order(second) == ["task-4", "task-2"]
    assert included(second) == ["Patient/pat-1001", "Patient/pat-2002"]
    assert first["total"] == second["total"] == 4
    assert link(second, "next") is None


def test_search_summary_count__gives_the_total_without_entries(client: TestClient) -> None:
    referral_world(client)

    for via in ("GET", "POST"):
        bundle = search(
            client,
            "Task",
            {"status": "requested,completed", "_summary": "count", "_include": "Task:focus"},
            via=via,
        )
        assert bundle["total"] == 3
        assert "entry" not in bundle
        assert link(bundle, "next") is None


def test_search_count__zero_gives_the_total_and_no_link_to_follow(client: TestClient) -> None:
    pager_patients(client, 3)

    bundle = search(client, "Patient", {"family": "pager", "_count": "0"})

    assert bundle["total"] == 3
    assert "entry" not in bundle
    # a next link could only repeat this same empty page (_count=0&_offset=0) forever
    assert link(bundle, "next") is None


def test_search_total_none__leaves_the_total_out_but_still_pages(client: TestClient) -> None:
    written = pager_patients(client, 5)

    for via in ("GET", "POST"):
        first = search(client, "Patient", {"_total": "none", "_count": "2"}, via=via)
        pages = walk(client, first, "next")

        assert all("total" not in page for page in pages)
        seen = [patient_id for page in pages for patient_id in in_order(page)]
        assert sorted(seen) == written
        assert len(seen) == len(set(seen))
        assert ("_total", "none") in query_of(str(link(first, "self")))


# -- POST _search -------------------------------------------------------------------------------


def test_search_post__merges_query_string_and_form_body(client: TestClient) -> None:
    referral_world(client)

    response = client.post(
        "/fhir/Task/_search?status=requested",
        content=urlencode({"owner": OTHER_CBO, "_include": "Task:focus"}),
        headers=as_org(ADMIN, **{"Content-Type": FORM}),
    )

    assert response.status_code == 200, response.text
    bundle = response.json()
    assert matched(bundle) == ["task-2"]
    assert included(bundle) == [f"ServiceRequest/{HOUSING}"]
    self_link = str(link(bundle, "self"))
    assert self_link.startswith(f"{LOCAL_BASE}/Task?")
    assert ("status", "requested") in query_of(self_link)
    assert ("owner", OTHER_CBO) in query_of(self_link)


def test_search_post__refuses_a_body_that_is_not_a_form(client: TestClient) -> None:
    response = client.post("/fhir/Task/_search", json={"status": "requested"}, headers=as_org(CBO))

    assert_outcome(response, 400, "invalid")


# -- errors -------------------------------------------------------------------------------------


def test_search_unknown_parameter__is_a_400_outcome(client: TestClient) -> None:
    for via in ("GET", "POST"):
        unknown = search_response(
            client, "Task", {"status": "requested", "colour": "blue"}, via=via
        )
        chained = search_response(client, "Task", {"patient.name.family": "rivera"}, via=via)

        assert_outcome(unknown, 400, "not-supported")
        assert_outcome(chained, 400, "not-supported")


def test_search_chained__one_level_through_a_reference(client: TestClient) -> None:
    referral_world(client)
    by_category = search(client, "Task", {"focus:ServiceRequest.category": "food-insecurity"})
    assert set(matched(by_category)) == {"task-1", "task-3", "task-4"}
    by_patient_name = search(client, "Task", {"patient.family": "rivera"})
    assert set(matched(by_patient_name)) == {"task-1", "task-3", "task-4"}
    by_owner_name = search(client, "Task", {"owner:Organization.name": "northside"})
    assert matched(by_owner_name) == ["task-2"]
    none = search(client, "Task", {"focus:ServiceRequest.category": "homelessness"})
    assert none["total"] == 0


def test_search_unknown_parameter__is_ignored_when_lenient(client: TestClient) -> None:
    referral_world(client)

    for via in ("GET", "POST"):
        bundle = search(
            client,
            "Task",
            {"colour": "blue", "status": "requested"},
            via=via,
            Prefer="handling=lenient",
        )

        assert matched(bundle) == ["task-1", "task-2"]
        self_query = query_of(str(link(bundle, "self")))
        assert ("status", "requested") in self_query
        assert all(name != "colour" for name, _ in self_query)


INVALID_SEARCHES: list[tuple[str, dict[str, str]]] = [
    ("Task", {"authored-on": "2025-13-01"}),
    ("Task", {"authored-on": "10/03/2025"}),
    ("Task", {"authored-on": "xx2025-03-10"}),
    ("Task", {"_lastUpdated": "yesterday"}),
    ("Task", {"_lastUpdated": "gt"}),
    ("Patient", {"birthdate": "1986-02-30"}),
    ("ServiceRequest", {"occurrence": "2025-04-10T25:00:00Z"}),
    ("Task", {"focus": "not a reference"}),
    ("Task", {"patient": "urn:uuid:5b1e9a2c-1111-4d2e-9d7a-1c2b3c4d5e6f"}),
    ("Task", {"owner": "Organization/"}),
    ("Task", {"owner": ""}),
    ("Task", {"focus:Patient": f"ServiceRequest/{FOOD}"}),
    ("Task", {"owner:missing": "maybe"}),
    ("Task", {"_id": "not an id"}),
    ("Task", {"status:exact": "requested"}),
    ("Task", {"_sort": "status"}),
    ("Task", {"_count": "-1"}),
    ("Task", {"_include": "Task:status"}),
    ("Task", {"_include": "ServiceRequest:patient"}),
    ("Task", {"_include:iterate": "Task:focus"}),
    ("Task", {"_total": "maybe"}),
]


@pytest.mark.parametrize(
    ("resource_type", "params"),
    INVALID_SEARCHES,
    ids=[f"{rtype}?{urlencode(params)}" for rtype, params in INVALID_SEARCHES],
)
def test_search_invalid_value__is_a_400_outcome(
    client: TestClient, resource_type: str, params: dict[str, str]
) -> None:
    response = search_response(client, resource_type, params)

    assert_outcome(response, 400, "invalid")


# -- deletes and updates ------------------------------------------------------------------------


def test_search_deleted__resources_drop_out_and_a_recreation_is_found_anew(
    client: TestClient,
) -> None:
    referral_world(client)
    put(client, patient("pat-3003", "Rivera", ["Ana"]))
    delete(client, "Task", "task-3")
    delete(client, "Patient", "pat-3003")

    check_cases(
        client,
        "Task",
        [
            ({"_id": "task-3"}, []),
            ({"status": "draft"}, []),
            ({"focus": FOOD}, ["task-1", "task-4"]),
            ({"part-of": "task-1"}, []),
            ({}, ["task-1", "task-2", "task-4"]),
        ],
    )
    check_cases(client, "Patient", [({"family": "rivera"}, ["pat-1001"])])
    revincluded = search(client, "Patient", {"_id": "pat-1001", "_revinclude": "Task:patient"})
    assert included(revincluded) == ["Task/task-1", "Task/task-4"]

    put(client, task("task-3", HOUSING, authoredOn="2025-05-01T00:00:00Z"))

    check_cases(
        client,
        "Task",
        [
            ({"_id": "task-3"}, ["task-3"]),
            ({"focus": HOUSING}, ["task-2", "task-3"]),
            ({"status": "draft"}, []),
            ({"part-of": "task-1"}, []),
            ({"authored-on": "2025-05-01"}, ["task-3"]),
            ({}, ALL_TASKS),
        ],
    )


def test_search_updated__a_task_appears_once_with_its_new_values(client: TestClient) -> None:
    world = referral_world(client)
    before = last_updated(world["task-1"])
    put(client, moved(world["task-1"], status="accepted"), CBO)

    check_cases(
        client,
        "Task",
        [
            ({"status": "requested"}, ["task-2"]),
            ({"status": "accepted"}, ["task-1"]),
            ({"_id": "task-1"}, ["task-1"]),
            ({"_lastUpdated": f"gt{before}", "_id": "task-1"}, ["task-1"]),
            ({"_lastUpdated": before}, []),
        ],
    )
    bundle = search(client, "Task", {"owner": CBO})
    assert in_order(bundle).count("task-1") == 1
    task_1 = next(
        e["resource"] for e in entries(bundle, "match") if e["resource"]["id"] == "task-1"
    )
    assert task_1["status"] == "accepted"
    assert task_1["meta"]["versionId"] == "2"


def test_search_updated__the_index_follows_every_parameter_type(client: TestClient) -> None:
    world = referral_world(client, with_tasks=False)
    put(
        client,
        moved(
            world[FOOD],
            category=[coded(TEMP, "housing-instability")],
            occurrenceDateTime="2025-06-01",
            performer=[{"reference": OTHER_CBO}],
        ),
    )
    put(client, patient("pat-1001", "Santos", ["Dee"], birthDate="1986-03-14"))

    check_cases(
        client,
        "ServiceRequest",
        [
            ({"category": "food-insecurity"}, []),
            ({"category": "housing-instability"}, [FOOD, HOUSING]),
            ({"occurrence": "2025-03-20"}, []),
            ({"occurrence": "2025-06-01"}, [FOOD]),
            ({"performer": CBO}, [TRANSPORT]),
            ({"performer": OTHER_CBO}, [FOOD, HOUSING]),
        ],
    )
    check_cases(
        client,
        "Patient",
        [
            ({"family": "rivera"}, []),
            ({"given": "denise"}, []),
            ({"family": "santos"}, ["pat-1001"]),
            ({"identifier": "MRN-0048213"}, []),  # the new version has no identifier
        ],
    )


def test_search_updated__an_update_mends_index_rows_it_did_not_write(
    client: TestClient, engine: Engine
) -> None:
    """An update writes only the index rows that differ from those stored, compared with
    the rows themselves: a row no current rule writes (one an older release's rules wrote,
    say) goes, and a row that is missing comes back, on the resource's next update."""
    put(client, patient("pat-7", "Okafor", ["Ada"]))
    with write_transaction(engine) as connection:
        connection.execute(
            text(
                "INSERT INTO search_string (resource_type, resource_id, param, normalised, exact)"
                " VALUES ('Patient', 'pat-7', 'family', 'stale', 'Stale')"
            )
        )
        connection.execute(
            text(
                "DELETE FROM search_string WHERE resource_type = 'Patient' "
                "AND resource_id = 'pat-7' AND param = 'given'"
            )
        )
    check_cases(client, "Patient", [({"family": "stale"}, ["pat-7"]), ({"given": "ada"}, [])])

    put(client, patient("pat-7", "Okafor", ["Ada"], birthDate="1990-01-02"))

    check_cases(
        client,
        "Patient",
        [
            ({"family": "stale"}, []),
            ({"given": "ada"}, ["pat-7"]),
            ({"family": "okafor"}, ["pat-7"]),
            ({"birthdate": "1990-01-02"}, ["pat-7"]),
        ],
    )


def test_search_by_an_identifier__sqlite_starts_from_the_index_rows_not_every_patient(
    client: TestClient, engine: Engine
) -> None:
    """Without planner statistics (a new database) SQLite walked every Patient in
    ``_lastUpdated`` order to skip a sort, so a lookup by identifier grew with the table."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans with its own statistics")
    for n in range(3):
        client.post(
            "/fhir/Patient",
            json={"resourceType": "Patient", "identifier": [{"system": MRN, "value": f"p{n}"}]},
            headers=as_org(HOSPITAL),
        )
    with selects_naming(engine, "search_token") as searches:
        found = search(client, "Patient", {"identifier": f"{MRN}|p1"}, org=HOSPITAL)
    assert found["total"] == 1
    assert searches
    for steps in sqlite_plans(engine, searches):
        assert "ix_resource_type_updated" not in steps, steps
        assert "search_token USING COVERING INDEX ix_search_token_lookup" in steps, steps
