from typing import Any

import pytest

from conformance.capability import capability_statement
from conformance.resource_types import (
    RESOURCE_TYPES,
    SDOHCC_CONSENT,
    SDOHCC_PROCEDURE,
    SDOHCC_SERVICE_REQUEST,
    TASK_FOR_REFERRAL,
)
from conformance.resources import validate_structure
from conformance.search_parameters import parameters_for
from conformance.search_request import parse_search

FHIR_BASE = "https://gateway.socialcare.example.org/fhir"
READS = ["read", "vread", "search-type", "history-instance", "history-type"]
WRITES = ["create", "update", "delete"]
SECURITY = {
    "cors": True,
    "service": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR",
                }
            ]
        }
    ],
}


def statement(**kwargs: Any) -> dict[str, Any]:
    return capability_statement(
        fhir_base=FHIR_BASE, software_version="0.1.0", date="2025-03-10", **kwargs
    )


def entries() -> dict[str, dict[str, Any]]:
    return {entry["type"]: entry for entry in statement()["rest"][0]["resource"]}


def test_capability_statement__is_a_valid_r4_capability_statement() -> None:
    validate_structure(statement(security=SECURITY))


def test_capability_statement__header() -> None:
    cs = statement()

    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["status"] == "active"
    assert cs["kind"] == "instance"
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["date"] == "2025-03-10"
    assert cs["software"] == {"name": "Loopgate", "version": "0.1.0"}
    assert cs["implementation"]["url"] == FHIR_BASE
    assert "json" in cs["format"]
    assert [rest["mode"] for rest in cs["rest"]] == ["server"]


def test_capability_statement__system_interactions() -> None:
    codes = [i["code"] for i in statement()["rest"][0]["interaction"]]

    assert codes == ["transaction", "batch", "history-system"]


def test_capability_statement__security_only_when_given() -> None:
    assert "security" not in statement()["rest"][0]
    assert statement(security=SECURITY)["rest"][0]["security"] == SECURITY


def test_capability_statement__lists_every_served_resource_type_once() -> None:
    types = [entry["type"] for entry in statement()["rest"][0]["resource"]]

    assert types == list(RESOURCE_TYPES)


@pytest.mark.parametrize(
    "resource_type", sorted(set(RESOURCE_TYPES) - {"Provenance", "AuditEvent"})
)
def test_capability_statement__writable_types_have_every_interaction(resource_type: str) -> None:
    entry = entries()[resource_type]

    assert [i["code"] for i in entry["interaction"]] == READS + WRITES
    assert entry["updateCreate"] is True
    assert entry["conditionalCreate"] is True


@pytest.mark.parametrize("resource_type", ["Provenance", "AuditEvent"])
def test_capability_statement__provenance_and_audit_event_are_read_only(
    resource_type: str,
) -> None:
    entry = entries()[resource_type]

    assert [i["code"] for i in entry["interaction"]] == READS
    assert entry["updateCreate"] is False
    assert entry["conditionalCreate"] is False


@pytest.mark.parametrize("resource_type", sorted(RESOURCE_TYPES))
def test_capability_statement__versioned_update_everywhere(resource_type: str) -> None:
    entry = entries()[resource_type]

    assert entry["versioning"] == "versioned-update"
    assert entry["readHistory"] is True
    assert entry["conditionalRead"] == "modified-since"
    assert entry["conditionalDelete"] == "not-supported"
    assert "literal" in entry["referencePolicy"]


@pytest.mark.parametrize(
    ("resource_type", "profile"),
    [
        ("Task", TASK_FOR_REFERRAL),
        ("ServiceRequest", SDOHCC_SERVICE_REQUEST),
        ("Procedure", SDOHCC_PROCEDURE),
        ("Consent", SDOHCC_CONSENT),
        ("Patient", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"),
    ],
)
def test_capability_statement__supported_profiles(resource_type: str, profile: str) -> None:
    assert entries()[resource_type]["supportedProfile"][0] == profile


def test_capability_statement__types_without_profiles_omit_supported_profile() -> None:
    assert "supportedProfile" not in entries()["Provenance"]


@pytest.mark.parametrize("resource_type", sorted(RESOURCE_TYPES))
def test_capability_statement__search_params_are_the_ones_the_parser_accepts(
    resource_type: str,
) -> None:
    names = [p["name"] for p in entries()[resource_type]["searchParam"]]

    assert sorted(names) == sorted(parameters_for(resource_type))
    assert len(names) == len(set(names))


def test_capability_statement__search_param_types_on_the_wire() -> None:
    params = {p["name"]: p for p in entries()["Task"]["searchParam"]}

    assert params["_id"]["type"] == "token"
    assert params["_lastUpdated"]["type"] == "date"
    assert params["_profile"]["type"] == "uri"
    assert params["status"]["type"] == "token"
    assert params["focus"]["type"] == "reference"
    assert params["authored-on"]["type"] == "date"
    assert params["output"]["definition"] == (
        "http://hl7.org/fhir/us/sdoh-clinicalcare/SearchParameter/Task-output-reference"
    )


def test_capability_statement__gravity_includes() -> None:
    task = entries()["Task"]
    service_request = entries()["ServiceRequest"]

    assert {"Task:focus", "Task:output", "Task:owner", "Task:requester", "Task:patient"} <= set(
        task["searchInclude"]
    )
    assert "ServiceRequest:supporting-info" in service_request["searchInclude"]
    assert {"Task:focus", "Procedure:based-on"} <= set(service_request["searchRevInclude"])


def test_capability_statement__revincludes_respect_parameter_targets() -> None:
    patient_revs = set(entries()["Patient"]["searchRevInclude"])
    organization_revs = set(entries()["Organization"]["searchRevInclude"])

    assert "Task:patient" in patient_revs
    assert "Task:patient" not in organization_revs
    assert "PractitionerRole:organization" in organization_revs
    assert "PractitionerRole:organization" not in patient_revs


@pytest.mark.parametrize("resource_type", sorted(RESOURCE_TYPES))
def test_capability_statement__advertised_includes_are_accepted_by_search(
    resource_type: str,
) -> None:
    entry = entries()[resource_type]
    pairs = [("_include", value) for value in entry.get("searchInclude", [])]
    pairs += [("_revinclude", value) for value in entry.get("searchRevInclude", [])]

    request = parse_search(resource_type, pairs, local_base=FHIR_BASE)

    assert len(request.includes) + len(request.revincludes) == len(pairs)
