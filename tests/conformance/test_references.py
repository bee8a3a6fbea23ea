import copy
from typing import Any

import pytest

from conformance.references import (
    ParsedReference,
    is_valid_id,
    parse_reference,
    reference_key,
    reference_type,
    rewrite_references,
    scan_references,
)

LOCAL_BASE = "https://gateway.socialcare.example.org/fhir"
EHR_BASE = "https://ehr.mercyhospital.example.org/fhir"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Task/task-ref-5001", ParsedReference("Task", "task-ref-5001")),
        ("Patient/pat-1001", ParsedReference("Patient", "pat-1001")),
        ("Patient/a.b-C9", ParsedReference("Patient", "a.b-C9")),
        ("Task/5001/_history/3", ParsedReference("Task", "5001", None, "3")),
        (
            f"{EHR_BASE}/ServiceRequest/sr-food-2001",
            ParsedReference("ServiceRequest", "sr-food-2001", EHR_BASE),
        ),
        (
            f"{EHR_BASE}/Patient/pat-1001/_history/7",
            ParsedReference("Patient", "pat-1001", EHR_BASE, "7"),
        ),
        ("http://example.org/Patient/1", ParsedReference("Patient", "1", "http://example.org")),
        (
            "http://127.0.0.1:8080/fhir/Task/1",
            ParsedReference("Task", "1", "http://127.0.0.1:8080/fhir"),
        ),
    ],
)
def test_parse_reference__splits_relative_and_absolute_forms(
    value: str, expected: ParsedReference
) -> None:
    assert parse_reference(value) == expected


@pytest.mark.parametrize("local_base", [LOCAL_BASE, f"{LOCAL_BASE}/"])
def test_parse_reference__absolute_under_our_base_is_local(local_base: str) -> None:
    parsed = parse_reference(
        f"{LOCAL_BASE}/Organization/cbo-eastside-food/_history/2", local_base=local_base
    )

    assert parsed == ParsedReference("Organization", "cbo-eastside-food", None, "2")
    assert parsed.is_local


def test_parse_reference__absolute_under_another_base_is_external() -> None:
    parsed = parse_reference(f"{EHR_BASE}/Patient/pat-1001", local_base=LOCAL_BASE)

    assert parsed is not None
    assert not parsed.is_local
    assert parsed.base == EHR_BASE


def test_parse_reference__base_must_match_exactly_to_be_local() -> None:
    # Same host, different path: another server as far as references are concerned.
    parsed = parse_reference(
        "https://gateway.socialcare.example.org/other/Patient/1", local_base=LOCAL_BASE
    )

    assert parsed is not None
    assert parsed.base == "https://gateway.socialcare.example.org/other"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Patient",
        "Patient/",
        "/Patient/1",
        "patient/1",
        "Patient/has space",
        "Patient/a_b",
        "Patient/" + "a" * 65,
        "Patient/1/_history/",
        "Patient/1/extra",
        "#contained-1",
        "urn:uuid:6c2a1d2e-0f4b-4a51-9a7c-58a1f2b0f001",
        "urn:oid:2.16.840.1.113883",
        "ftp://example.org/Patient/1",
        "https://example.org",
        "https://example.org/fhir/Patient/1?_format=json",
        "https://example.org/fhir/Patient/1#frag",
        "Patient/1 ",
    ],
)
def test_parse_reference__returns_none_for_other_forms(value: str) -> None:
    assert parse_reference(value) is None


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (None, None),
        ("", None),
        ("#contained-1", None),
        ("urn:uuid:6c2a1d2e-0f4b-4a51-9a7c-58a1f2b0f001", None),
        ("Task/5001", "Task/5001"),
        ("Task/5001/_history/3", "Task/5001"),
        (f"{LOCAL_BASE}/Task/5001", "Task/5001"),
        (f"{LOCAL_BASE}/Task/5001/_history/3", "Task/5001"),
        (f"{EHR_BASE}/ServiceRequest/sr-food-2001", f"{EHR_BASE}/ServiceRequest/sr-food-2001"),
        (f"{EHR_BASE}/Patient/pat-1001/_history/2", f"{EHR_BASE}/Patient/pat-1001"),
    ],
)
def test_reference_key__identifies_the_target_regardless_of_version(
    value: str | None, key: str | None
) -> None:
    assert reference_key(value, local_base=LOCAL_BASE) == key


def test_reference_key__same_resource_relative_and_absolute_compare_equal() -> None:
    relative = reference_key("Organization/cbo-eastside-food", local_base=LOCAL_BASE)
    absolute = reference_key(f"{LOCAL_BASE}/Organization/cbo-eastside-food", local_base=LOCAL_BASE)

    assert relative == absolute


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ({"reference": "Patient/1"}, "Patient"),
        (
            {"reference": f"{EHR_BASE}/PractitionerRole/prr-1", "type": "Organization"},
            "PractitionerRole",
        ),
        ({"reference": "urn:uuid:abc", "type": "Organization"}, "Organization"),
        ({"identifier": {"value": "x"}, "type": "Practitioner"}, "Practitioner"),
        ({"display": "Someone"}, None),
        ({"reference": "#c1"}, None),
    ],
)
def test_reference_type__prefers_the_url_then_the_declared_type(
    reference: dict[str, Any], expected: str | None
) -> None:
    assert reference_type(reference) == expected


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("pat-1001", True),
        ("a.b", True),
        ("A" * 64, True),
        ("A" * 65, False),
        ("a b", False),
        ("", False),
        ("a/b", False),
    ],
)
def test_is_valid_id__follows_the_fhir_id_pattern(value: str, valid: bool) -> None:
    assert is_valid_id(value) is valid


def _resource_with_every_kind() -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "contained": [
            {
                "resourceType": "Organization",
                "id": "c1",
                "partOf": {"reference": "Organization/inside-contained"},
            }
        ],
        "focus": {"reference": f"{EHR_BASE}/ServiceRequest/sr-food-2001"},
        "for": {"reference": "urn:uuid:6c2a1d2e-0f4b-4a51-9a7c-58a1f2b0f001"},
        "requester": {"reference": "PractitionerRole/prr-dr-okafor"},
        "owner": {"reference": f"{LOCAL_BASE}/Organization/cbo-eastside-food"},
        "location": {"reference": "#c1"},
        "encounter": {"reference": "not a reference"},
        "insurance": [{"reference": "urn:oid:2.16.840.1.113883.3.1"}],
        "reasonReference": {"reference": "http://example.org/has space/Condition/1"},
        "relevantHistory": [{"reference": "http://example.org/some/page"}],
        "output": [
            {"type": {"text": "x"}, "valueReference": {"reference": "Procedure/proc-6001"}},
            {"type": {"text": "y"}, "valueReference": {"reference": "Patient"}},
        ],
    }


def test_scan_references__sorts_references_by_what_the_server_must_do() -> None:
    scan = scan_references(_resource_with_every_kind(), local_base=LOCAL_BASE)

    assert scan.local == [
        ("Task.requester.reference", ParsedReference("PractitionerRole", "prr-dr-okafor")),
        ("Task.owner.reference", ParsedReference("Organization", "cbo-eastside-food")),
        ("Task.output[0].valueReference.reference", ParsedReference("Procedure", "proc-6001")),
    ]
    assert scan.placeholders == ["Task.for.reference", "Task.insurance[0].reference"]
    assert scan.malformed == [
        "Task.encounter.reference",
        "Task.reasonReference.reference",
        "Task.output[1].valueReference.reference",
    ]


def test_scan_references__skips_contained_and_external_references() -> None:
    scan = scan_references(_resource_with_every_kind(), local_base=LOCAL_BASE)
    paths = [path for path, _ in scan.local] + scan.placeholders + scan.malformed

    assert "Task.location.reference" not in paths  # '#c1' points inside the resource
    assert "Task.focus.reference" not in paths  # external: lives on the EHR
    assert "Task.relevantHistory[0].reference" not in paths  # an absolute URL, not ours
    assert not any(path.startswith("Task.contained") for path in paths)


def test_scan_references__without_a_local_base_absolute_urls_are_external() -> None:
    scan = scan_references(
        {"resourceType": "Task", "owner": {"reference": f"{LOCAL_BASE}/Organization/x"}},
        local_base=None,
    )

    assert (scan.local, scan.placeholders, scan.malformed) == ([], [], [])


def test_scan_references__finds_references_in_extensions() -> None:
    resource = {
        "resourceType": "ServiceRequest",
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal",
                "valueReference": {"reference": "Goal/goal-food-3001"},
            }
        ],
    }

    scan = scan_references(resource, local_base=LOCAL_BASE)

    assert scan.local == [
        (
            "ServiceRequest.extension[0].valueReference.reference",
            ParsedReference("Goal", "goal-food-3001"),
        )
    ]


def test_rewrite_references__replaces_placeholders_everywhere_in_place() -> None:
    patient_uuid = "urn:uuid:6c2a1d2e-0f4b-4a51-9a7c-58a1f2b0f001"
    sr_uuid = "urn:uuid:0b6a7c1e-3d2f-4a10-8e55-2a4f9f0c0002"
    resource = {
        "resourceType": "Task",
        "focus": {"reference": sr_uuid},
        "for": {"reference": patient_uuid, "display": patient_uuid},
        "input": [{"valueReference": {"reference": patient_uuid}}],
        "requester": {"reference": "Organization/mercy-hospital"},
        "note": [{"text": patient_uuid}],
    }
    mapping = {patient_uuid: "Patient/pat-1001", sr_uuid: "ServiceRequest/sr-food-2001"}

    result = rewrite_references(resource, mapping)

    assert result is resource
    assert resource["focus"] == {"reference": "ServiceRequest/sr-food-2001"}
    assert resource["for"] == {"reference": "Patient/pat-1001", "display": patient_uuid}
    assert resource["input"] == [{"valueReference": {"reference": "Patient/pat-1001"}}]
    assert resource["requester"] == {"reference": "Organization/mercy-hospital"}
    assert resource["note"] == [{"text": patient_uuid}]


def test_rewrite_references__with_an_empty_mapping_changes_nothing() -> None:
    resource = _resource_with_every_kind()
    before = copy.deepcopy(resource)

    rewrite_references(resource, {})

    assert resource == before
