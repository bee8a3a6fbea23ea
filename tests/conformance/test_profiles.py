from collections.abc import Callable
from typing import Any

import pytest

from conformance.errors import ProfileViolation
from conformance.profiles import check_profile
from tests.conformance.examples import (
    TEMP_CODES,
    consent,
    procedure,
    resulting_activity,
    service_request,
    task_completed,
    task_requested,
)

Resource = dict[str, Any]
Mutation = Callable[[Resource], object]

TASK_FOR_PATIENT = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForPatient"
)


def violation(resource: Resource, *, root: str | None = None) -> ProfileViolation:
    with pytest.raises(ProfileViolation) as caught:
        check_profile(resource, root=root)
    return caught.value


def expressions(error: ProfileViolation) -> list[str]:
    return [e for issue in error.issues for e in issue.expression]


def _set(**values: Any) -> Mutation:
    return lambda resource: resource.update(values)


def _drop(*keys: str) -> Mutation:
    def apply(resource: Resource) -> None:
        for key in keys:
            resource.pop(key, None)

    return apply


def _swap(removed: str, **added: Any) -> Mutation:
    def apply(resource: Resource) -> None:
        del resource[removed]
        resource.update(added)

    return apply


def _content(code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": TEMP_CODES, "code": code}]}, **value}


# Examples pass


@pytest.mark.parametrize(
    "example",
    [task_requested, task_completed, service_request, procedure, consent],
    ids=lambda f: f.__name__,
)
def test_check_profile__shared_examples_pass(example: Callable[[], Resource]) -> None:
    check_profile(example())


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient"},
        {"resourceType": "Organization", "name": "x"},
        {"resourceType": "Observation"},
    ],
)
def test_check_profile__types_without_gravity_rules_pass(resource: Resource) -> None:
    check_profile(resource)


# Task


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [
        (_set(status="received"), "Task.status"),
        (_set(status="ready"), "Task.status"),
        (_set(status="bogus"), "Task.status"),
        (_set(intent="proposal"), "Task.intent"),
        (_set(intent="plan"), "Task.intent"),
        (_drop("intent"), "Task.intent"),
        (_drop("code"), "Task.code"),
        (
            _set(
                code={
                    "coding": [
                        {"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "approve"}
                    ]
                }
            ),
            "Task.code",
        ),
        (_set(code={"coding": [{"code": "fulfill"}]}), "Task.code"),
        (_set(code={"text": "fulfill"}), "Task.code"),
        (_drop("focus"), "Task.focus"),
        (_set(focus={"reference": "Patient/pat-1001"}), "Task.focus"),
        (
            _set(focus={"reference": "https://ehr.example.org/fhir/CarePlan/cp-1"}),
            "Task.focus",
        ),
        (_set(focus={"identifier": {"value": "x"}, "type": "Task"}), "Task.focus"),
        (_drop("for"), "Task.for"),
        (_set(**{"for": {"reference": "Practitioner/dr-okafor"}}), "Task.for"),
        (_drop("authoredOn"), "Task.authoredOn"),
        (_set(authoredOn=""), "Task.authoredOn"),
        (_drop("requester"), "Task.requester"),
        (_set(requester={"reference": "Practitioner/dr-okafor"}), "Task.requester"),
        (
            _set(requester={"reference": "https://ehr.example.org/fhir/Practitioner/dr-okafor"}),
            "Task.requester",
        ),
        (_set(requester={"display": "Dr. Okafor", "type": "Practitioner"}), "Task.requester"),
        (_set(requester={"reference": "Patient/pat-1001"}), "Task.requester"),
        (_set(priority="soon"), "Task.priority"),
        (_set(statusReason={"coding": [{"code": "capacity"}]}), "Task.statusReason.text"),
        (_set(statusReason={}), "Task.statusReason.text"),
        (_set(statusReason={"text": ""}), "Task.statusReason.text"),
        (_set(partOf=[{"reference": "ServiceRequest/sr-1"}]), "Task.partOf[0]"),
        (
            _set(partOf=[{"reference": "Task/t-0"}, {"reference": "Procedure/p-1"}]),
            "Task.partOf[1]",
        ),
        (_set(input=[_content("additional-content", valueString="notes")]), "Task.input[0].value"),
        (
            _set(output=[resulting_activity("Observation/obs-1")]),
            "Task.output[0].valueReference",
        ),
        (
            _set(output=[_content("resulting-activity", valueString="delivered")]),
            "Task.output[0].value",
        ),
        (
            _set(
                output=[
                    resulting_activity("Procedure/proc-6001"),
                    _content("additional-content", valueString="x"),
                ]
            ),
            "Task.output[1].value",
        ),
    ],
)
def test_check_profile__task_rule_fails_at_its_element(mutate: Mutation, expression: str) -> None:
    task = task_requested()
    mutate(task)

    error = violation(task)

    assert error.status == 422
    assert error.issue_code == "invariant"
    assert expressions(error) == [expression]


@pytest.mark.parametrize("status", ["rejected", "cancelled", "on-hold", "failed"])
def test_check_profile__task_status_needing_a_reason_without_one_fails(status: str) -> None:
    task = task_requested()
    task["status"] = status

    error = violation(task)

    assert expressions(error) == ["Task.statusReason.text"]
    assert status in error.detail


@pytest.mark.parametrize("status", ["rejected", "cancelled", "on-hold", "failed"])
def test_check_profile__task_status_with_a_reason_text_passes(status: str) -> None:
    task = task_requested()
    task["status"] = status
    task["statusReason"] = {"text": "At capacity until next month"}

    check_profile(task)


@pytest.mark.parametrize(
    "status",
    ["draft", "requested", "accepted", "in-progress", "completed", "entered-in-error"],
)
def test_check_profile__task_statuses_without_reason_pass(status: str) -> None:
    task = task_requested()
    task["status"] = status

    check_profile(task)


@pytest.mark.parametrize(
    "mutate",
    [
        _set(requester={"reference": "Organization/mercy-hospital"}),
        _set(requester={"reference": "PractitionerRole/prr-dr-okafor"}),
        _set(**{"for": {"reference": "Group/g-1"}}),
        _set(**{"for": {"reference": "RelatedPerson/rp-1"}}),
        _set(partOf=[{"reference": "Task/parent-1"}]),
        _set(focus={"reference": "urn:uuid:6c2a1d2e-0f4b-4a51-9a7c-58a1f2b0f001"}),
        _set(priority="urgent"),
        _drop("priority"),
        _drop("owner"),
        _set(
            output=[
                _content(
                    "resulting-activity",
                    valueCodeableConcept={
                        "coding": [{"system": "http://snomed.info/sct", "code": "467771000124109"}]
                    },
                )
            ]
        ),
        _set(
            output=[_content("additional-content", valueReference={"reference": "Observation/o-1"})]
        ),
        _set(input=[{"type": {"text": "other"}, "valueString": "free text"}]),
    ],
)
def test_check_profile__task_allowed_variants_pass(mutate: Mutation) -> None:
    task = task_requested()
    mutate(task)

    check_profile(task)


def test_check_profile__task_reports_every_problem_at_once() -> None:
    task = task_requested()
    task["status"] = "received"
    task["intent"] = "proposal"
    del task["authoredOn"]
    task["requester"] = {"reference": "Practitioner/dr-okafor"}

    error = violation(task)

    assert expressions(error) == ["Task.status", "Task.intent", "Task.authoredOn", "Task.requester"]
    assert error.detail == "4 problems found"
    assert error.expression == ("Task.status",)


def test_check_profile__task_missing_element_issue_is_required() -> None:
    task = task_requested()
    del task["for"]

    error = violation(task)

    assert [issue.code for issue in error.issues] == ["required"]


def test_check_profile__task_for_patient_is_not_supported() -> None:
    task = task_requested()
    task["meta"]["profile"] = [TASK_FOR_PATIENT]

    error = violation(task)

    assert expressions(error) == ["Task.meta.profile"]
    assert error.issues[0].code == "not-supported"


# ServiceRequest


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [
        (_set(status="requested"), "ServiceRequest.status"),
        (_set(intent="referral"), "ServiceRequest.intent"),
        (_set(priority="soon"), "ServiceRequest.priority"),
        (_drop("code"), "ServiceRequest.code"),
        (_set(code={"text": "Food pantry"}), "ServiceRequest.code.coding"),
        (
            _set(code={"coding": [{"system": "http://snomed.info/sct"}]}),
            "ServiceRequest.code.coding",
        ),
        (_drop("subject"), "ServiceRequest.subject"),
        (_set(subject={"reference": "Practitioner/dr-okafor"}), "ServiceRequest.subject"),
        (_set(specimen=[{"reference": "Specimen/s-1"}]), "ServiceRequest.specimen"),
        (_set(bodySite=[{"text": "arm"}]), "ServiceRequest.bodySite"),
        (
            _set(category=[{"coding": [{"system": TEMP_CODES, "code": "food"}]}]),
            "ServiceRequest.category[0]",
        ),
        (
            _set(
                category=[
                    {"coding": [{"system": "http://snomed.info/sct", "code": "410606002"}]},
                    {"coding": [{"system": TEMP_CODES, "code": "health-literacy"}]},
                ]
            ),
            "ServiceRequest.category[1]",
        ),
    ],
)
def test_check_profile__service_request_rule_fails_at_its_element(
    mutate: Mutation, expression: str
) -> None:
    request = service_request()
    mutate(request)

    error = violation(request)

    assert error.status == 422
    assert expressions(error) == [expression]


@pytest.mark.parametrize(
    "mutate",
    [
        _set(intent="filler-order"),
        _set(intent="original-order"),
        _set(subject={"reference": "Group/g-1"}),
        _set(subject={"reference": "Location/loc-1"}),
        _drop("category"),
        _set(category=[{"coding": [{"system": TEMP_CODES, "code": "housing-instability"}]}]),
        _set(category=[{"coding": [{"system": "http://example.org/local", "code": "food"}]}]),
        _drop("priority", "requester", "authoredOn", "occurrencePeriod"),
    ],
)
def test_check_profile__service_request_allowed_variants_pass(mutate: Mutation) -> None:
    request = service_request()
    mutate(request)

    check_profile(request)


# Procedure


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [
        (_drop("performedDateTime"), "Procedure.performed[x]"),
        (_set(status="bogus"), "Procedure.status"),
        (_drop("code"), "Procedure.code"),
        (_set(code={"text": "Food pantry help"}), "Procedure.code.coding"),
        (_drop("subject"), "Procedure.subject"),
        (
            _set(category={"coding": [{"system": TEMP_CODES, "code": "hunger"}]}),
            "Procedure.category",
        ),
        (_set(basedOn=[{"reference": "Task/task-ref-5001"}]), "Procedure.basedOn[0]"),
    ],
)
def test_check_profile__procedure_rule_fails_at_its_element(
    mutate: Mutation, expression: str
) -> None:
    proc = procedure()
    mutate(proc)

    error = violation(proc)

    assert expressions(error) == [expression]


def test_check_profile__procedure_in_progress_needs_performed_too() -> None:
    proc = procedure()
    proc["status"] = "in-progress"
    del proc["performedDateTime"]

    assert expressions(violation(proc)) == ["Procedure.performed[x]"]


@pytest.mark.parametrize(
    "mutate",
    [
        _set(status="not-done"),
        _set(status="preparation"),
        _set(status="stopped"),
        _set(status="entered-in-error"),
    ],
)
def test_check_profile__procedure_not_completed_may_omit_performed(mutate: Mutation) -> None:
    proc = procedure()
    del proc["performedDateTime"]
    mutate(proc)

    check_profile(proc)


@pytest.mark.parametrize(
    "performed",
    [
        {"performedPeriod": {"start": "2025-03-14"}},
        {"performedString": "mid-March"},
        {"performedAge": {"value": 39, "unit": "a"}},
        {"performedRange": {"low": {"value": 1}}},
    ],
)
def test_check_profile__procedure_completed_accepts_any_performed_type(
    performed: dict[str, Any],
) -> None:
    proc = procedure()
    del proc["performedDateTime"]
    proc.update(performed)

    check_profile(proc)


def test_check_profile__procedure_based_on_a_care_plan_passes() -> None:
    proc = procedure()
    proc["basedOn"].append({"reference": "CarePlan/cp-1"})

    check_profile(proc)


# Consent


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [
        (_drop("category"), "Consent.category"),
        (
            _set(category=[{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]),
            "Consent.category",
        ),
        (
            _set(category=[{"coding": [{"system": "http://example.org/other", "code": "IDSCL"}]}]),
            "Consent.category",
        ),
        (_drop("organization"), "Consent.organization"),
        (_set(organization=[]), "Consent.organization"),
        (_drop("sourceReference"), "Consent.source[x]"),
        (_drop("policy"), "Consent.policy"),
        (_drop("patient"), "Consent.patient"),
        (_set(patient={"reference": "Practitioner/dr-okafor"}), "Consent.patient"),
        (_drop("dateTime"), "Consent.dateTime"),
        (_set(status="signed"), "Consent.status"),
    ],
)
def test_check_profile__consent_rule_fails_at_its_element(
    mutate: Mutation, expression: str
) -> None:
    resource = consent()
    mutate(resource)

    error = violation(resource)

    assert expressions(error) == [expression]


@pytest.mark.parametrize(
    "mutate",
    [
        _swap(
            "sourceReference",
            sourceAttachment={"contentType": "application/pdf", "url": "http://x/y.pdf"},
        ),
        _swap("policy", policyRule={"text": "HIPAA"}),
    ],
    ids=["source-attachment", "policy-rule"],
)
def test_check_profile__consent_alternatives_pass(mutate: Mutation) -> None:
    resource = consent()
    mutate(resource)

    check_profile(resource)


# root=


def test_check_profile__root_reroots_expressions_into_a_bundle_entry() -> None:
    task = task_requested()
    task["status"] = "received"
    task["output"] = [resulting_activity("Observation/obs-1")]

    error = violation(task, root="Bundle.entry[2].resource")

    assert expressions(error) == [
        "Bundle.entry[2].resource.status",
        "Bundle.entry[2].resource.output[0].valueReference",
    ]
    assert error.expression == ("Bundle.entry[2].resource.status",)


def test_check_profile__root_applies_to_every_resource_type() -> None:
    proc = procedure()
    del proc["performedDateTime"]

    error = violation(proc, root="Bundle.entry[0].resource")

    assert expressions(error) == ["Bundle.entry[0].resource.performed[x]"]


def test_check_profile__without_root_expressions_start_at_the_type() -> None:
    request = service_request()
    request["specimen"] = [{"reference": "Specimen/s-1"}]

    assert expressions(violation(request)) == ["ServiceRequest.specimen"]
