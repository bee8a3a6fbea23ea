import json
from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from conformance.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    Issue,
    ProfileViolation,
    ResourceNotFound,
    TransitionNotAllowed,
    raise_if_issues,
)
from conformance.outcome import (
    fhirpath_from_loc,
    informational_outcome,
    issues_from_validation_errors,
    outcome_from_error,
    outcome_from_issues,
)
from conformance.resources import validate_structure

PHI_NAME = "Denise Rivera"
PHI_MRN = "MRN-0048213"
PHI_PHONE = "+1-555-201-4477"
PHI_EMAIL = "denise.rivera@example.com"
PHI = (PHI_NAME, PHI_MRN, PHI_PHONE, PHI_EMAIL, "Rivera", "0048213", "555-201")


class _Name(BaseModel):
    model_config = ConfigDict(extra="forbid")

    family: str
    given: list[str] = []


class _Person(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resourceType: str  # noqa: N815 - FHIR's own element name
    birthDate: date  # noqa: N815
    active: bool
    multipleBirthInteger: int = 0  # noqa: N815
    name: list[_Name] = []
    gender: str = "unknown"

    @field_validator("gender")
    @classmethod
    def _known_gender(cls, value: str) -> str:
        if value not in ("male", "female", "other", "unknown"):
            raise ValueError(f"{value!r} is not an administrative gender")
        return value


def _phi_validation_error() -> ValidationError:
    payload = {
        "resourceType": "Patient",
        "birthDate": f"{PHI_NAME} {PHI_MRN}",
        "active": PHI_PHONE,
        "multipleBirthInteger": PHI_MRN,
        "name": [{"family": 1986, "given": PHI_NAME}],
        "gender": PHI_EMAIL,
        "telecom": [{"value": PHI_PHONE}],
    }
    with pytest.raises(ValidationError) as caught:
        _Person.model_validate(payload)
    return caught.value


def _assert_no_phi(rendered: Any) -> None:
    text = json.dumps(rendered)
    for fragment in PHI:
        assert fragment not in text


# Rendering errors


def test_outcome_from_error__single_issue() -> None:
    error = ProfileViolation("Task.intent must be 'order'", expression=("Task.intent",))

    outcome = outcome_from_error(error, request_id="req-42")

    assert outcome == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invariant",
                "details": {"text": "Task.intent must be 'order'"},
                "expression": ["Task.intent"],
                "diagnostics": "request-id=req-42",
            }
        ],
    }


def test_outcome_from_error__one_entry_per_issue_with_their_own_codes() -> None:
    issues = [
        Issue("Task.status is not valid", ("Task.status",), "code-invalid"),
        Issue("Task.for is required", ("Task.for",), "required"),
        Issue("Look again", (), None, "warning"),
    ]
    with pytest.raises(ProfileViolation) as caught:
        raise_if_issues(issues)

    outcome = outcome_from_error(caught.value)

    assert [
        (i["severity"], i["code"], i["details"]["text"], i.get("expression"))
        for i in outcome["issue"]
    ] == [
        ("error", "code-invalid", "Task.status is not valid", ["Task.status"]),
        ("error", "required", "Task.for is required", ["Task.for"]),
        ("warning", "invariant", "Look again", None),
    ]
    assert all("diagnostics" not in issue for issue in outcome["issue"])


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BadRequest("x"), 400, "invalid"),
        (Forbidden("x"), 403, "forbidden"),
        (ResourceNotFound("x"), 404, "not-found"),
        (TransitionNotAllowed("x"), 422, "business-rule"),
        (GatewayError("x"), 500, "exception"),
    ],
)
def test_outcome_from_error__issue_code_follows_the_error_class(
    error: GatewayError, status: int, code: str
) -> None:
    outcome = outcome_from_error(error)

    assert error.status == status
    assert [issue["code"] for issue in outcome["issue"]] == [code]
    assert "expression" not in outcome["issue"][0]


def test_outcome_from_issues__default_code_fills_missing_codes() -> None:
    outcome = outcome_from_issues([Issue("x")], default_code="processing")

    assert outcome["issue"][0]["code"] == "processing"


def test_informational_outcome() -> None:
    assert informational_outcome("Deleted") == {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "information", "code": "informational", "details": {"text": "Deleted"}}
        ],
    }


# FHIRPath from pydantic locations


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), "Patient"),
        (("birthDate",), "Patient.birthDate"),
        (("name", 0, "family"), "Patient.name[0].family"),
        (("name", 1, "given", 2), "Patient.name[1].given[2]"),
        (("__root__", "name"), "Patient.name"),
        (("root",), "Patient"),
    ],
)
def test_fhirpath_from_loc(loc: tuple[str | int, ...], path: str) -> None:
    assert fhirpath_from_loc("Patient", loc) == path


def test_fhirpath_from_loc__under_a_bundle_entry() -> None:
    assert (
        fhirpath_from_loc("Bundle.entry[2].resource", ("status",))
        == "Bundle.entry[2].resource.status"
    )


# Validation errors


def test_issues_from_validation_errors__never_echo_input_values() -> None:
    error = _phi_validation_error()
    # The raw pydantic error does carry the values: that is what must not leak.
    assert PHI_EMAIL in str(error.errors())

    issues = issues_from_validation_errors("Patient", error.errors())
    outcome = outcome_from_issues(issues, default_code="invalid", request_id="req-1")

    assert len(issues) == len(error.errors())
    _assert_no_phi(outcome)


def test_issues_from_validation_errors__say_where_and_what_in_our_words() -> None:
    error = _phi_validation_error()

    issues = issues_from_validation_errors("Patient", error.errors())

    by_path = {issue.expression[0]: issue for issue in issues}
    assert by_path["Patient.active"].detail == "Expected true or false"
    assert by_path["Patient.active"].code == "value"
    assert by_path["Patient.multipleBirthInteger"].detail == "Expected an integer"
    assert by_path["Patient.name[0].family"].detail == "Expected a string"
    assert by_path["Patient.name[0].given"].detail == "Expected an array"
    assert by_path["Patient.gender"].detail == "Invalid value"
    assert by_path["Patient.telecom"].detail == "Unknown element"
    assert by_path["Patient.telecom"].code == "structure"
    assert by_path["Patient.birthDate"].code == "value"


def test_issues_from_validation_errors__missing_element_is_required() -> None:
    with pytest.raises(ValidationError) as caught:
        _Person.model_validate({"resourceType": "Patient"})

    issues = issues_from_validation_errors("Patient", caught.value.errors())

    assert {(i.expression, i.detail, i.code) for i in issues} == {
        (("Patient.birthDate",), "Required element is missing", "required"),
        (("Patient.active",), "Required element is missing", "required"),
    }


def test_issues_from_validation_errors__unknown_error_type_is_generic() -> None:
    errors = [{"type": "some_future_type", "loc": ("x",), "msg": PHI_NAME, "input": PHI_NAME}]

    issues = issues_from_validation_errors("Patient", errors)

    assert issues == [Issue("Invalid value", ("Patient.x",), "value")]


def test_issues_from_validation_errors__fhir_model_failure_never_echoes_phi() -> None:
    patient = {
        "resourceType": "Patient",
        "birthDate": f"{PHI_NAME} {PHI_MRN}",
        "active": PHI_PHONE,
        "name": [{"family": [PHI_NAME], "given": PHI_EMAIL}],
        "telecom": PHI_PHONE,
    }
    with pytest.raises(BadRequest) as caught:
        validate_structure(patient, root="Bundle.entry[0].resource")

    outcome = outcome_from_error(caught.value, request_id="req-7")

    assert caught.value.status == 400
    _assert_no_phi(outcome)
    expressions = {e for issue in outcome["issue"] for e in issue["expression"]}
    assert "Bundle.entry[0].resource.birthDate" in expressions
    assert "Bundle.entry[0].resource.active" in expressions
