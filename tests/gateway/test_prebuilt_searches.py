"""Prebuilt searches find exactly what the general search query finds, page for page and
caller for caller, and stand aside for every shape they were not built for."""

from typing import Any

import pytest
from sqlalchemy import Engine

from conformance.access import AccessContext
from conformance.search_index import TOKEN_INDEX_LENGTH
from conformance.search_parameters import SEARCH_PARAMETERS
from conformance.search_request import SearchRequest
from gateway.access.policy import AccessFilter
from gateway.app import create_app
from gateway.fhir.service import FhirService
from gateway.settings import Settings
from gateway.store import prebuilt_searches, search_query
from gateway.store.engine import read_transaction
from gateway.store.prebuilt_searches import _CriterionShape, _prebuilt, _Shape
from gateway.store.resource_rows import StoredVersion
from tests.builders import CBO, HOSPITAL, OTHER_CBO

MRN = "http://mercyhospital.example.org/identifiers/mrn"
EXTERNAL_PATIENT = "https://ehr.example.org/fhir/Patient/p1"
LOINC = "http://loinc.org"
NPI = "http://hl7.org/fhir/sid/us-npi"


@pytest.fixture
def service(settings: Settings, engine: Engine) -> FhirService:
    """Patients and Observations written by a hospital and a CBO, one Patient deleted."""
    fhir: FhirService = create_app(settings, engine=engine).state.fhir
    hospital, cbo = actor(HOSPITAL), actor(CBO)
    fhir.update(hospital, "Patient", "p1", patient("p1", (MRN, "1001"), (None, "walk-in-7")))
    fhir.update(hospital, "Patient", "p2", patient("p2", (MRN, "1002")))
    fhir.update(hospital, "Patient", "p3", patient("p3", (MRN, "1003")))
    fhir.delete(hospital, "Patient", "p3")
    fhir.update(cbo, "Patient", "p4", patient("p4", (MRN, "1001"), (None, "1001")))
    for n in range(5):
        fhir.update(hospital, "Observation", f"o{n}", observation(f"o{n}", "Patient/p1"))
    fhir.update(hospital, "Observation", "o-ext", observation("o-ext", EXTERNAL_PATIENT))
    fhir.update(cbo, "Observation", "o-cbo", observation("o-cbo", "Patient/p1"))
    fhir.update(cbo, "Observation", "o-p4", observation("o-p4", "Patient/p4"))
    fhir.update(hospital, "Organization", "org-1", organization("org-1", "1234567890"))
    fhir.update(cbo, "Organization", "org-2", organization("org-2", "1234567890"))
    return fhir


def actor(organization: str) -> AccessContext:
    return AccessContext(organization=organization, client_id="test-client")


def patient(patient_id: str, *identifiers: tuple[str | None, str]) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [
            {"value": value} if system is None else {"system": system, "value": value}
            for system, value in identifiers
        ],
    }


def organization(organization_id: str, npi: str) -> dict[str, Any]:
    """Organizations are seen by every organization (a shared directory)."""
    return {
        "resourceType": "Organization",
        "id": organization_id,
        "identifier": [{"system": NPI, "value": npi}],
        "name": f"Organization {organization_id}",
    }


def observation(observation_id: str, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": observation_id,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "88122-7"}]},
        "subject": {"reference": subject},
    }


CALLERS = {
    "anyone": lambda resource_type: None,
    "unrestricted": lambda resource_type: AccessFilter(resource_type, None, None),
    "hospital": lambda resource_type: AccessFilter(resource_type, None, HOSPITAL),
    "cbo": lambda resource_type: AccessFilter(resource_type, None, CBO),
    "other cbo": lambda resource_type: AccessFilter(resource_type, None, OTHER_CBO),
}

PREBUILT = [
    ("Patient", f"identifier={MRN}|1001"),
    ("Patient", "identifier=1001"),
    ("Patient", "identifier=|1001"),
    ("Patient", f"identifier={MRN}|"),
    ("Patient", "identifier=walk-in-7"),
    ("Patient", f"identifier={MRN}|1003"),  # deleted
    ("Patient", f"identifier={MRN}|1001&_count=1"),
    ("Patient", f"identifier={MRN}|1001&_count=1&_offset=1"),
    ("Observation", "subject=Patient/p1"),
    ("Observation", "subject=p1"),
    ("Observation", "patient=Patient/p1"),
    ("Observation", f"subject={EXTERNAL_PATIENT}"),
    ("Observation", "subject=Patient/p1&_count=2"),
    ("Observation", "subject=Patient/p1&_count=2&_offset=2"),
    ("Observation", "subject=Patient/p1&_count=2&_offset=6"),
    ("Observation", "subject=Patient/p4"),
    ("Observation", f"code={LOINC}|88122-7"),
    ("Observation", f"subject=Patient/p1&code={LOINC}|88122-7&_count=3&_offset=1"),
    ("Observation", f"code={LOINC}|&patient=Patient/p4"),
    ("Patient", f"identifier={MRN}|1001&identifier=1001"),
    ("Patient", f"identifier={MRN}|1001&identifier={MRN}|1002"),
    ("Organization", f"identifier={NPI}|1234567890"),
]


def found(
    service: FhirService, query: str, resource_type: str, access: AccessFilter | None
) -> tuple[list[StoredVersion] | None, list[StoredVersion]]:
    """(prebuilt, general) results of the same search."""
    request = parsed(service, resource_type, query)
    with read_transaction(service.engine) as connection:
        return (
            prebuilt_searches.matches(connection, request, access),
            search_query.find_matches(connection, request, access),
        )


def counted(
    service: FhirService, query: str, resource_type: str, access: AccessFilter | None
) -> tuple[int | None, int]:
    """(prebuilt, general) totals of the same search."""
    request = parsed(service, resource_type, query)
    with read_transaction(service.engine) as connection:
        return (
            prebuilt_searches.count(connection, request, access),
            search_query.count_matches(connection, request, access),
        )


def parsed(service: FhirService, resource_type: str, query: str) -> SearchRequest:
    pairs = [tuple(pair.split("=", 1)) for pair in query.split("&")]
    return service.parse_search(resource_type, pairs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("resource_type", "query"), PREBUILT)
def test_a_prebuilt_search_finds_what_the_general_query_finds(
    service: FhirService, resource_type: str, query: str
) -> None:
    for caller, access in CALLERS.items():
        prebuilt, general = found(service, query, resource_type, access(resource_type))
        assert prebuilt is not None, f"this shape is prebuilt ({caller})"
        assert prebuilt == general, caller
        total, general_total = counted(service, query, resource_type, access(resource_type))
        assert total is not None, f"this shape's count is prebuilt ({caller})"
        assert total == general_total, caller


@pytest.mark.parametrize(
    ("resource_type", "query", "caller", "ids"),
    [
        ("Patient", f"identifier={MRN}|1001", "anyone", ["p1", "p4"]),
        ("Patient", f"identifier={MRN}|1001", "hospital", ["p1"]),
        ("Patient", f"identifier={MRN}|1001", "cbo", ["p4"]),
        ("Patient", f"identifier={MRN}|1001", "other cbo", []),
        ("Patient", "identifier=|1001", "anyone", ["p4"]),
        ("Patient", "identifier=walk-in-7", "hospital", ["p1"]),
        ("Patient", f"identifier={MRN}|1003", "hospital", []),
        ("Observation", "subject=Patient/p1&_count=2&_offset=2", "hospital", ["o2", "o3"]),
        ("Observation", "subject=Patient/p1", "cbo", ["o-cbo"]),
        ("Observation", f"subject={EXTERNAL_PATIENT}", "anyone", ["o-ext"]),
        ("Patient", f"identifier={MRN}|1001&identifier=|1001", "anyone", ["p4"]),
        ("Observation", "subject=Patient/p1&patient=Patient/p1&_count=2", "hospital", ["o0", "o1"]),
        ("Organization", f"identifier={NPI}|1234567890", "other cbo", ["org-1", "org-2"]),
    ],
)
def test_a_prebuilt_search_finds_the_resources_its_caller_may_see(
    service: FhirService, resource_type: str, query: str, caller: str, ids: list[str]
) -> None:
    access = CALLERS[caller](resource_type)
    prebuilt, _ = found(service, query, resource_type, access)
    assert prebuilt is not None
    assert [match.id for match in prebuilt] == ids
    unpaged = query.split("&")[0]  # the total counts every page
    assert counted(service, unpaged, resource_type, access)[0] == len(
        found(service, f"{unpaged}&_count=100", resource_type, access)[1]
    )


@pytest.mark.parametrize(
    ("resource_type", "query", "access"),
    [
        ("Patient", f"identifier={MRN}|1001&_sort=-_lastUpdated", None),
        ("Patient", "identifier=1001&identifier=1001&identifier=1001&identifier=1001", None),
        ("Patient", f"identifier={MRN}|1001&name=Rivera", None),
        ("Patient", f"identifier={MRN}|1001,{MRN}|1002", None),
        ("Patient", "identifier:missing=false", None),
        ("Patient", "name=Rivera", None),
        ("Patient", f"identifier={MRN}|{'9' * (TOKEN_INDEX_LENGTH + 1)}", None),
        ("Task", f"owner={CBO}", None),  # the inbox: task_party decides it
    ],
)
def test_other_shapes_are_left_to_the_general_query(
    service: FhirService, resource_type: str, query: str, access: AccessFilter | None
) -> None:
    prebuilt, _ = found(service, query, resource_type, access)
    assert prebuilt is None
    assert counted(service, query, resource_type, access)[0] is None


def test_a_scope_with_criteria_of_its_own_is_left_to_the_general_query(
    service: FhirService,
) -> None:
    """``system/Observation.rs?code=…``: the scope's criteria join the search's."""
    [scope] = service.parse_search("Observation", [("code", f"{LOINC}|88122-7")]).criteria
    access = AccessFilter("Observation", ((scope,),), HOSPITAL)
    prebuilt, general = found(service, "subject=Patient/p1", "Observation", access)
    assert prebuilt is None
    assert counted(service, "subject=Patient/p1", "Observation", access) == (None, 5)
    assert [match.id for match in general] == ["o0", "o1", "o2", "o3", "o4"]


def test_a_shape_whose_query_would_change_a_value_is_never_prebuilt() -> None:
    """The guard behind every prebuilt shape: a query built from stand-ins that cuts, escapes
    or wraps one of them (here a string search's LIKE pattern) is refused, not compiled."""
    [name] = [p for p in SEARCH_PARAMETERS["Patient"] if p.code == "name"]
    shape = _Shape("sqlite", "Patient", (_CriterionShape(name),), organization=False)
    assert _prebuilt(shape, counting=False) is None
    assert _prebuilt(shape, counting=True) is None


def test_prebuilt_searches_are_planned_for_each_request_on_postgresql(
    service: FhirService, engine: Engine
) -> None:
    """Never a prepared statement, which PostgreSQL would soon plan once for every value
    (engine.py: a search went from 50 to 850 ms that way)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    request = parsed(service, "Patient", f"identifier={MRN}|1001")
    with read_transaction(engine) as connection:
        for _ in range(10):
            assert prebuilt_searches.matches(connection, request, None) is not None
        prepared = connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements")
        searches = [
            row.statement
            for row in prepared
            if row.statement.startswith("SELECT") and "search_token" in row.statement
        ]
        assert searches == []
