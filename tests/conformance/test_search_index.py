from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conformance.fhir_time import MAX_US, MIN_US
from conformance.search_index import (
    ANY_REFERENCE,
    STRING_INDEX_LENGTH,
    TOKEN_INDEX_LENGTH,
    DateValue,
    IndexEntries,
    ReferenceValue,
    StringValue,
    TokenValue,
    extract_index,
    normalise_string,
    values_at,
)
from tests.conformance.examples import (
    EHR_BASE,
    GATEWAY_BASE,
    TEMP_CODES,
    patient,
    procedure,
    service_request,
    task_completed,
    task_requested,
)

SNOMED = "http://snomed.info/sct"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(*parts: int) -> int:
    return (datetime(*parts, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def tokens(entries: IndexEntries, param: str) -> set[tuple[str, str]]:
    return {(t.system, t.code) for t in entries.tokens if t.param == param}


def references(entries: IndexEntries, param: str) -> set[tuple[str, str, str]]:
    return {
        (r.target_type, r.target_id, r.target_base) for r in entries.references if r.param == param
    }


def dates(entries: IndexEntries, param: str) -> list[tuple[int, int]]:
    return [(d.low, d.high) for d in entries.dates if d.param == param]


def strings(entries: IndexEntries, param: str) -> list[tuple[str, str]]:
    return [(s.normalised, s.exact) for s in entries.strings if s.param == param]


def test_extract_index__task_tokens() -> None:
    entries = extract_index(task_requested(), local_base=GATEWAY_BASE)

    assert tokens(entries, "status") == {("", "requested")}
    assert tokens(entries, "code") == {("http://hl7.org/fhir/CodeSystem/task-code", "fulfill")}
    assert tokens(entries, "priority") == {("", "routine")}
    assert tokens(entries, "identifier") == {
        ("http://mercyhospital.example.org/identifiers/sdoh-referral-task", "RT-2025-000123")
    }
    assert tokens(entries, "_profile") == {
        (
            "",
            "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
            "SDOHCC-TaskForReferralManagement",
        )
    }
    assert tokens(entries, "business-status") == set()


def test_extract_index__task_references_keep_the_base_of_external_targets() -> None:
    entries = extract_index(task_completed(), local_base=GATEWAY_BASE)

    assert references(entries, "focus") == {("ServiceRequest", "sr-food-2001", EHR_BASE)}
    assert references(entries, "patient") == {("Patient", "pat-1001", EHR_BASE)}
    assert references(entries, "subject") == {("Patient", "pat-1001", EHR_BASE)}
    assert references(entries, "requester") == {("PractitionerRole", "prr-dr-okafor", EHR_BASE)}
    assert references(entries, "owner") == {("Organization", "cbo-eastside-food", "")}
    assert references(entries, "output") == {("Procedure", "proc-6001", "")}


def test_extract_index__task_dates_are_utc_ranges() -> None:
    entries = extract_index(task_completed(), local_base=GATEWAY_BASE)

    # authoredOn 2025-03-10T14:06:00-05:00, lastModified 2025-03-21T16:42:37-05:00
    authored = us(2025, 3, 10, 19, 6)
    modified = us(2025, 3, 21, 21, 42, 37)
    assert dates(entries, "authored-on") == [(authored, authored + 999_999)]
    assert dates(entries, "modified") == [(modified, modified + 999_999)]


def test_extract_index__business_status_text_only_gives_no_token() -> None:
    # businessStatus is a CodeableConcept with text only: nothing a token search could match.
    entries = extract_index(task_completed(), local_base=GATEWAY_BASE)

    assert tokens(entries, "business-status") == set()


def test_extract_index__service_request_tokens_include_every_category_coding() -> None:
    entries = extract_index(service_request(), local_base=GATEWAY_BASE)

    assert tokens(entries, "category") == {
        (SNOMED, "410606002"),
        (TEMP_CODES, "food-insecurity"),
    }
    assert tokens(entries, "code") == {(SNOMED, "467771000124109")}
    assert tokens(entries, "intent") == {("", "order")}
    assert tokens(entries, "status") == {("", "active")}
    assert tokens(entries, "identifier") == {
        ("http://mercyhospital.example.org/identifiers/sdoh-referral", "REF-2025-000123")
    }


def test_extract_index__service_request_references() -> None:
    entries = extract_index(service_request(), local_base=GATEWAY_BASE)

    assert references(entries, "patient") == {("Patient", "pat-1001", "")}
    assert references(entries, "subject") == {("Patient", "pat-1001", "")}
    assert references(entries, "requester") == {("PractitionerRole", "prr-dr-okafor", "")}
    assert references(entries, "supporting-info") == {("Consent", "consent-1001", "")}
    # performer is absolute under the gateway's own base: indexed as local.
    assert references(entries, "performer") == {("Organization", "cbo-eastside-food", "")}


def test_extract_index__absolute_reference_is_external_under_another_base() -> None:
    entries = extract_index(service_request(), local_base="http://127.0.0.1:8080/fhir")

    assert references(entries, "performer") == {("Organization", "cbo-eastside-food", GATEWAY_BASE)}


def test_extract_index__service_request_occurrence_period_spans_both_days() -> None:
    entries = extract_index(service_request(), local_base=GATEWAY_BASE)

    # occurrencePeriod 2025-03-10 .. 2025-04-10: from the start of the first day to the end
    # of the last.
    assert dates(entries, "occurrence") == [(us(2025, 3, 10), us(2025, 4, 11) - 1)]
    authored = us(2025, 3, 10, 19, 5)
    assert dates(entries, "authored") == [(authored, authored + 999_999)]


def test_extract_index__procedure() -> None:
    entries = extract_index(procedure(), local_base=GATEWAY_BASE)

    # Procedure.category is a single CodeableConcept in R4, with two codings.
    assert tokens(entries, "category") == {
        (SNOMED, "410606002"),
        (TEMP_CODES, "food-insecurity"),
    }
    assert tokens(entries, "status") == {("", "completed")}
    assert tokens(entries, "code") == {(SNOMED, "467771000124109")}
    assert references(entries, "based-on") == {("ServiceRequest", "sr-food-2001", EHR_BASE)}
    assert references(entries, "patient") == {("Patient", "pat-1001", EHR_BASE)}
    assert references(entries, "performer") == {("Organization", "cbo-eastside-food", "")}
    performed = us(2025, 3, 14, 15, 15)
    assert dates(entries, "date") == [(performed, performed + 999_999)]


def test_extract_index__patient() -> None:
    entries = extract_index(patient(), local_base=GATEWAY_BASE)

    assert tokens(entries, "identifier") == {
        ("http://mercyhospital.example.org/identifiers/mrn", "MRN-0048213")
    }
    assert tokens(entries, "gender") == {("", "female")}
    assert tokens(entries, "active") == {("", "true")}
    assert [d for d in entries.dates if d.param == "birthdate"] == [
        DateValue("birthdate", us(1986, 3, 14), us(1986, 3, 15) - 1)
    ]
    assert strings(entries, "family") == [("rivera", "Rivera")]
    assert strings(entries, "given") == [("denise", "Denise"), ("m.", "M.")]
    assert set(strings(entries, "name")) == {
        ("rivera", "Rivera"),
        ("denise", "Denise"),
        ("m.", "M."),
    }


def test_extract_index__telecom_and_address_are_not_indexed_for_patients() -> None:
    entries = extract_index(patient(), local_base=GATEWAY_BASE)
    indexed = {t.code for t in entries.tokens} | {s.exact for s in entries.strings}

    assert "+1-555-201-4477" not in indexed
    assert "412 Elm Street" not in indexed


def test_extract_index__false_boolean_token() -> None:
    entries = extract_index({"resourceType": "Patient", "active": False}, local_base=None)

    assert tokens(entries, "active") == {("", "false")}


def test_extract_index__reference_outside_the_parameter_targets_is_skipped() -> None:
    task = {"resourceType": "Task", "for": {"reference": "Group/g-1"}}

    entries = extract_index(task, local_base=None)

    assert references(entries, "patient") == set()  # patient targets Patient only
    assert references(entries, "subject") == {("Group", "g-1", "")}


@pytest.mark.parametrize(
    "reference",
    [
        {"reference": "#c1"},
        {"reference": "urn:uuid:6c2a1d2e-0f4b-4a51-9a7c-58a1f2b0f001"},
        {"identifier": {"value": "x"}, "type": "Organization"},
        {"display": "Eastside"},
    ],
)
def test_extract_index__reference_without_a_location_is_skipped(
    reference: dict[str, Any],
) -> None:
    entries = extract_index({"resourceType": "Task", "owner": reference}, local_base=None)

    assert references(entries, "owner") == set()


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ({"start": "2025-03-10"}, (us(2025, 3, 10), MAX_US)),
        ({"end": "2025-04-10"}, (MIN_US, us(2025, 4, 11) - 1)),
        (
            {"start": "2025-03-10T09:00:00Z", "end": "2025-03-10T10:00:00Z"},
            (us(2025, 3, 10, 9), us(2025, 3, 10, 10, 0, 1) - 1),
        ),
    ],
)
def test_extract_index__open_periods_extend_to_the_edge_of_time(
    period: dict[str, str], expected: tuple[int, int]
) -> None:
    request = {"resourceType": "ServiceRequest", "occurrencePeriod": period}

    entries = extract_index(request, local_base=None)

    assert dates(entries, "occurrence") == [expected]


@pytest.mark.parametrize("value", ["2025-02-30", "not a date", "2025-13-01"])
def test_extract_index__invalid_date_is_left_out_not_raised(value: str) -> None:
    entries = extract_index({"resourceType": "Patient", "birthDate": value}, local_base=None)

    assert dates(entries, "birthdate") == []


def test_extract_index__date_at_the_end_of_time_is_indexed() -> None:
    entries = extract_index({"resourceType": "Patient", "birthDate": "9999-12-31"}, local_base=None)

    assert dates(entries, "birthdate") == [(us(9999, 12, 31), MAX_US)]


def test_extract_index__unknown_resource_type_indexes_only_common_parameters() -> None:
    resource = {
        "resourceType": "Basic",
        "meta": {"profile": ["http://example.org/p"]},
        "code": {"coding": [{"system": "s", "code": "c"}]},
    }

    entries = extract_index(resource, local_base=None)

    assert entries.tokens == [TokenValue("_profile", "", "http://example.org/p")]
    assert (entries.references, entries.dates, entries.strings) == ([], [], [])


def test_extract_index__organization_name_and_alias_are_strings() -> None:
    organization = {
        "resourceType": "Organization",
        "name": "Eastside Community Food Bank",
        "alias": ["Eastside Pantry"],
    }

    entries = extract_index(organization, local_base=None)

    assert strings(entries, "name") == [
        ("eastside community food bank", "Eastside Community Food Bank"),
        ("eastside pantry", "Eastside Pantry"),
    ]


def test_extract_index__coding_and_identifier_without_system_have_empty_system() -> None:
    task = {
        "resourceType": "Task",
        "identifier": [{"value": "RT-1"}],
        "code": {"coding": [{"code": "fulfill"}, {"system": "s"}]},
    }

    entries = extract_index(task, local_base=None)

    assert tokens(entries, "identifier") == {("", "RT-1")}
    assert tokens(entries, "code") == {("", "fulfill")}


def test_token_value__is_truncated_to_the_index_width() -> None:
    token = TokenValue("identifier", "s" * 300, "c" * 300)

    assert (len(token.system), len(token.code)) == (TOKEN_INDEX_LENGTH, TOKEN_INDEX_LENGTH)


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("Rivera", "rivera"),
        ("RIVÉRA", "rivera"),
        ("rivéra", "rivera"),
        ("Nuñez", "nunez"),
        ("Straße", "strasse"),
        ("  Denise   M. ", "denise m."),
        ("ﬁsh", "fish"),  # compatibility ligature
    ],
)
def test_normalise_string__is_case_and_accent_insensitive(text: str, normalised: str) -> None:
    assert normalise_string(text) == normalised


def test_normalise_string__is_bounded_to_the_index_width() -> None:
    assert len(normalise_string("a" * 500)) == STRING_INDEX_LENGTH


def test_extract_index__accented_name_matches_its_plain_form() -> None:
    resource = {"resourceType": "Patient", "name": [{"family": "Rivéra"}]}

    entries = extract_index(resource, local_base=None)

    assert entries.strings[0] == StringValue("name", "rivera", "Rivéra")
    assert strings(entries, "family") == [(normalise_string("RIVERA"), "Rivéra")]


def test_values_at__steps_through_arrays() -> None:
    resource = {"name": [{"given": ["A", "B"]}, {"given": ["C"]}, {"family": "D"}]}

    assert list(values_at(resource, "name.given")) == ["A", "B", "C"]
    assert list(values_at(resource, "name.missing")) == []


def test_reference_value__carries_param_and_target() -> None:
    entries = extract_index(
        {"resourceType": "Task", "focus": {"reference": "ServiceRequest/sr-1"}}, local_base=None
    )

    # a reference a search parameter indexes is not repeated under the internal one
    assert entries.references == [ReferenceValue("focus", "ServiceRequest", "sr-1", "")]


def test_any_reference__covers_references_no_search_parameter_names() -> None:
    entries = extract_index(
        {
            "resourceType": "ServiceRequest",
            "reasonReference": [{"reference": "Condition/c1"}],
            "supportingInfo": [{"reference": "https://ehr.example.org/fhir/Consent/1"}],
            "contained": [
                {
                    "resourceType": "Patient",
                    "generalPractitioner": [{"reference": "Practitioner/inner"}],
                }
            ],
        },
        local_base=None,
    )
    anywhere = {
        (r.target_type, r.target_id) for r in entries.references if r.param == ANY_REFERENCE
    }
    assert anywhere == {("Condition", "c1")}  # external and contained ones are not local refs
