import copy
from datetime import date

import pytest
from pydantic import ValidationError

from conformance.resources import validate_structure
from conformance.task_rules import OWNER_EDITABLE, changed_elements
from conformance.terminology import SDOHCC_TEMPORARY_CODES
from fhir_mappings import (
    REASON_SYSTEM,
    AcceptAction,
    CancelAction,
    CodingIn,
    CompleteAction,
    DeclineAction,
    FailAction,
    HoldAction,
    MessageAction,
    ResumeAction,
    StartAction,
    allowed_actions,
    task_from_action,
)
from tests.fhir_mappings.referrals import (
    CBO,
    CBO_USER,
    NEW_PROCEDURE,
    check_owner_edit,
    task_at,
)

NOW = "2025-03-12T15:00:00Z"
HOLD_REASON = {"coding": [{"system": REASON_SYSTEM, "code": "waitlisted"}], "text": "Waitlisted"}


def act(task, action, *, user=CBO_USER, procedure_reference=None):
    new = task_from_action(
        task,
        action,
        actor_organization=CBO,
        actor_user=user,
        now=NOW,
        procedure_reference=procedure_reference,
    )
    check_owner_edit(task, new, user=user)
    validate_structure(new)
    assert set(changed_elements(task, new)) <= OWNER_EDITABLE
    return new


@pytest.mark.parametrize(
    ("status", "action", "target"),
    [
        ("requested", AcceptAction(), "accepted"),
        ("accepted", StartAction(), "in-progress"),
        ("on-hold", ResumeAction(), "in-progress"),
    ],
)
def test_task_from_action__plain_moves_set_status_and_drop_any_reason(status, action, target):
    task = task_at(status, statusReason=HOLD_REASON)

    new = act(task, action)

    assert new["status"] == target
    assert "statusReason" not in new
    assert new["lastModified"] == NOW


@pytest.mark.parametrize(
    ("status", "action", "target"),
    [
        ("requested", DeclineAction(reason="no-capacity", text="Full until May"), "rejected"),
        ("accepted", HoldAction(reason="waitlisted", text="Full until May"), "on-hold"),
        ("in-progress", FailAction(reason="unable-to-contact", text="Full until May"), "failed"),
        ("on-hold", CancelAction(reason="client-moved", text="Full until May"), "cancelled"),
    ],
)
def test_task_from_action__reasoned_moves_carry_coding_and_text(status, action, target):
    task = task_at(status, statusReason={"text": "earlier"} if status == "on-hold" else None)
    if task["statusReason"] is None:
        del task["statusReason"]

    new = act(task, action)

    assert new["status"] == target
    assert new["statusReason"]["coding"][0]["system"] == REASON_SYSTEM
    assert new["statusReason"]["coding"][0]["code"] == action.reason
    assert new["statusReason"]["text"] == "Full until May"
    assert set(changed_elements(task, new)) == {"status", "statusReason", "lastModified"}


def test_task_from_action__reason_text_defaults_to_the_code_display():
    new = act(task_at(), DeclineAction(reason="out-of-service-area"))

    assert new["statusReason"] == {
        "coding": [
            {
                "system": REASON_SYSTEM,
                "code": "out-of-service-area",
                "display": "Out of service area",
            }
        ],
        "text": "Out of service area",
    }


def test_task_from_action__start_opens_the_execution_period_once():
    started = act(task_at("accepted"), StartAction())
    assert started["executionPeriod"] == {"start": NOW}

    task = task_at("accepted", executionPeriod={"start": "2025-03-11T09:00:00Z"})
    assert act(task, StartAction())["executionPeriod"] == {"start": "2025-03-11T09:00:00Z"}


def test_task_from_action__complete_adds_output_outcome_note_and_period_end():
    task = task_at("in-progress", executionPeriod={"start": "2025-03-11T09:00:00Z"})
    action = CompleteAction(outcome="enrolled", note="  Enrolled in SNAP  ")

    new = act(task, action, procedure_reference=NEW_PROCEDURE)

    assert new["status"] == "completed"
    assert new["output"] == [
        {
            "type": {
                "coding": [
                    {
                        "system": SDOHCC_TEMPORARY_CODES,
                        "code": "resulting-activity",
                        "display": "Resulting Activity",
                    }
                ]
            },
            "valueReference": {"reference": NEW_PROCEDURE, "type": "Procedure"},
        }
    ]
    assert new["businessStatus"] == {
        "coding": [{"system": REASON_SYSTEM, "code": "enrolled", "display": "Client enrolled"}],
        "text": "Client enrolled",
    }
    assert new["executionPeriod"] == {"start": "2025-03-11T09:00:00Z", "end": NOW}
    assert new["note"] == [
        {"authorReference": {"reference": CBO_USER}, "time": NOW, "text": "Enrolled in SNAP"}
    ]


def test_task_from_action__complete_keeps_earlier_outputs_and_notes():
    earlier_note = {"text": "first"}
    task = task_at("accepted", note=[earlier_note])

    new = act(task, CompleteAction(outcome="service-provided"), procedure_reference=NEW_PROCEDURE)

    assert new["note"] == [earlier_note]
    assert len(new["output"]) == 1


def test_task_from_action__complete_needs_the_procedure_reference():
    with pytest.raises(ValueError, match="procedure_reference"):
        task_from_action(
            task_at("in-progress"),
            CompleteAction(outcome="enrolled"),
            actor_organization=CBO,
            actor_user=None,
            now=NOW,
        )


@pytest.mark.parametrize(("user", "author"), [(CBO_USER, CBO_USER), (None, CBO)])
def test_task_from_action__message_appends_a_note_by_the_actor(user, author):
    task = task_at("on-hold", statusReason=HOLD_REASON, note=[{"text": "earlier"}])

    new = act(task, MessageAction(text="Client called back"), user=user)

    assert new["status"] == "on-hold"
    assert new["statusReason"] == HOLD_REASON
    assert new["note"] == [
        {"text": "earlier"},
        {"authorReference": {"reference": author}, "time": NOW, "text": "Client called back"},
    ]
    assert set(changed_elements(task, new)) == {"note", "lastModified"}


def test_task_from_action__never_mutates_the_current_task():
    task = task_at("in-progress", note=[{"text": "x"}])
    before = copy.deepcopy(task)

    act(task, CompleteAction(outcome="enrolled", note="done"), procedure_reference=NEW_PROCEDURE)
    act(task, HoldAction(reason="waitlisted"))

    assert task == before


# -- request models --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (DeclineAction, {"reason": "waitlisted"}),
        (HoldAction, {"reason": "duplicate"}),
        (FailAction, {"reason": "referral-error"}),
        (CancelAction, {"reason": "enrolled"}),
        (CompleteAction, {"outcome": "no-capacity"}),
        (DeclineAction, {"reason": "other"}),
        (DeclineAction, {"reason": "other", "text": "   "}),
        (CompleteAction, {"outcome": "other"}),
        (CompleteAction, {"outcome": "enrolled", "performed": "2025-03-12T10:00:00"}),
        (MessageAction, {"text": ""}),
        (AcceptAction, {"note": "unexpected"}),
        (CompleteAction, {"outcome": "enrolled", "service": {"system": "x"}}),
    ],
    ids=[
        "decline-hold-code",
        "hold-decline-code",
        "fail-cancel-code",
        "cancel-outcome",
        "complete-reason",
        "other-no-text",
        "other-blank-text",
        "other-outcome-no-note",
        "naive-time",
        "empty-message",
        "extra-field",
        "service-no-code",
    ],
)
def test_actions__invalid_bodies_are_refused(model, body):
    with pytest.raises(ValidationError):
        model.model_validate(body)


def test_actions__valid_bodies_parse_from_json():
    complete = CompleteAction.model_validate_json(
        '{"outcome": "partially-provided", "performed": "2025-03-12",'
        ' "service": {"system": "http://snomed.info/sct", "code": "710925007"}}'
    )

    assert complete.service == CodingIn(system="http://snomed.info/sct", code="710925007")
    assert complete.performed == date(2025, 3, 12)
    assert DeclineAction.model_validate({"reason": "other", "text": " Why "}).text == "Why"
    assert AcceptAction.model_validate({}) == AcceptAction()


@pytest.mark.parametrize(
    ("status", "actions"),
    [
        ("draft", []),
        ("requested", ["accept", "decline", "cancel", "message"]),
        ("accepted", ["start", "hold", "complete", "fail", "cancel", "message"]),
        ("in-progress", ["hold", "complete", "fail", "cancel", "message"]),
        ("on-hold", ["resume", "complete", "fail", "cancel", "message"]),
        ("completed", []),
        ("entered-in-error", []),
    ],
)
def test_allowed_actions__follow_the_task_state_machine(status, actions):
    assert allowed_actions(status) == actions
