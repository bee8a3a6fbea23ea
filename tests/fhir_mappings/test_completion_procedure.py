from datetime import UTC, date, datetime

import pytest

from conformance.errors import Unprocessable
from conformance.profiles import check_profile
from conformance.resource_types import SDOHCC_PROCEDURE
from conformance.resources import validate_structure
from fhir_mappings import CodingIn, CompleteAction, procedure_from_completion
from tests.conformance.examples import EHR_BASE, TEMP_CODES, service_request
from tests.fhir_mappings.referrals import CBO, task_at

NOW = "2025-03-14T15:00:00Z"


def make(task=None, request=None, action=None, **kwargs):
    procedure = procedure_from_completion(
        task or task_at("in-progress"),
        request if request is not None else service_request(),
        action or CompleteAction(outcome="service-provided"),
        performer_organization=CBO,
        procedure_id="proc-7",
        now=NOW,
        **kwargs,
    )
    check_profile(procedure)
    validate_structure(procedure)
    return procedure


def test_procedure__is_an_sdohcc_procedure_for_the_referral():
    task = task_at("in-progress")

    procedure = make(task)

    assert procedure["meta"] == {"profile": [SDOHCC_PROCEDURE]}
    assert (procedure["id"], procedure["status"]) == ("proc-7", "completed")
    assert procedure["basedOn"] == [task["focus"]]
    assert procedure["subject"] == task["for"]
    assert procedure["category"] == {
        "coding": [{"system": TEMP_CODES, "code": "food-insecurity", "display": "Food Insecurity"}]
    }
    assert procedure["code"] == service_request()["code"]
    assert procedure["performedDateTime"] == NOW
    assert procedure["performer"] == [{"actor": {"reference": CBO}}]
    assert "note" not in procedure


def test_procedure__references_copied_from_the_ehr_request_become_absolute():
    procedure = make()

    assert procedure["reasonReference"] == [
        {"reference": f"{EHR_BASE}/Condition/cond-food-1001", "display": "Food insecurity"}
    ]
    [goal] = procedure["extension"]
    assert goal["valueReference"]["reference"] == f"{EHR_BASE}/Goal/goal-food-3001"


def test_procedure__a_local_request_keeps_relative_references():
    task = task_at("in-progress", focus={"reference": "ServiceRequest/sr-food-2001"})

    procedure = make(task)

    assert procedure["basedOn"] == [{"reference": "ServiceRequest/sr-food-2001"}]
    assert procedure["reasonReference"][0]["reference"] == "Condition/cond-food-1001"


def test_procedure__service_note_and_performed_date_from_the_action():
    action = CompleteAction(
        outcome="partially-provided",
        service=CodingIn(system="http://snomed.info/sct", code="710925007", display="Food"),
        performed=date(2025, 3, 13),
        note="Two boxes delivered",
    )

    procedure = make(action=action)

    assert procedure["code"] == {
        "coding": [{"system": "http://snomed.info/sct", "code": "710925007", "display": "Food"}]
    }
    assert procedure["performedDateTime"] == "2025-03-13"
    assert procedure["note"] == [
        {"authorReference": {"reference": CBO}, "time": NOW, "text": "Two boxes delivered"}
    ]


def test_procedure__performed_time_keeps_its_zone():
    moment = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)

    procedure = make(action=CompleteAction(outcome="enrolled", performed=moment))

    assert procedure["performedDateTime"] == "2025-03-14T09:30:00+00:00"


@pytest.mark.parametrize("performed", [date(2025, 3, 15), datetime(2025, 3, 14, 16, 0, tzinfo=UTC)])
def test_procedure__performed_in_the_future_is_refused(performed):
    with pytest.raises(Unprocessable) as caught:
        make(action=CompleteAction(outcome="enrolled", performed=performed))

    assert caught.value.expression == ("performed",)


def test_procedure__without_a_request_needs_a_service():
    service = CodingIn(system="http://snomed.info/sct", code="710925007")

    procedure = make(request={}, action=CompleteAction(outcome="enrolled", service=service))

    assert "category" not in procedure
    assert "reasonReference" not in procedure
    with pytest.raises(Unprocessable) as caught:
        make(request={})
    assert caught.value.expression == ("service",)


def test_procedure__an_uncoded_requested_service_is_not_enough():
    request = service_request()
    request["code"] = {"text": "Help with food"}

    with pytest.raises(Unprocessable):
        make(request=request)


def test_procedure__only_sdoh_categories_are_copied():
    request = service_request()
    request["category"].append(
        {"coding": [{"system": TEMP_CODES, "code": "transportation-insecurity"}]}
    )
    request["category"].append({"coding": [{"system": TEMP_CODES, "code": "not-a-category"}]})

    codes = [c["code"] for c in make(request=request)["category"]["coding"]]

    assert codes == ["food-insecurity", "transportation-insecurity"]
