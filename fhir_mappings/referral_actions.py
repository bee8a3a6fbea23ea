"""A CBO's JSON action → the new Task version the workflow will check and store.

The new Task is a deep copy of the current one with only owner-editable elements changed
(``conformance.task_rules.OWNER_EDITABLE``: status, statusReason, businessStatus, output,
executionPeriod, lastModified, and one appended note), so the same edit-rights check the FHIR
door runs passes. Messages are Task.note entries: both sides read them on the Task itself.
"""

import copy
from typing import Any

from conformance.terminology import RESULTING_ACTIVITY, SDOHCC_TEMPORARY_CODES
from fhir_mappings._fhir_json import Resource
from fhir_mappings.action_models import (
    AcceptAction,
    CancelAction,
    CodingIn,
    CompleteAction,
    DeclineAction,
    FailAction,
    HoldAction,
    MessageAction,
    ReferralAction,
    ResumeAction,
    StartAction,
)
from fhir_mappings.action_moves import TARGET_STATUS
from fhir_mappings.completion_procedure import procedure_from_completion
from fhir_mappings.reasons import REASON_SYSTEM, display_of

_NAMES: dict[type[ReferralAction], str] = {
    DeclineAction: "decline",
    HoldAction: "hold",
    FailAction: "fail",
    CancelAction: "cancel",
    AcceptAction: "accept",
    ResumeAction: "resume",
}


def task_from_action(
    task: Resource,
    action: ReferralAction,
    *,
    actor_organization: str,
    actor_user: str | None = None,
    now: str,
    procedure_reference: str | None = None,
) -> Resource:
    """The Task after ``action``; ``now`` is a FHIR instant.

    ``procedure_reference`` (required to complete) names the Procedure made by
    ``procedure_from_completion``. Whether the move is allowed is the workflow's call.
    """
    new = copy.deepcopy(task)
    new["lastModified"] = now
    author = actor_user or actor_organization
    match action:
        case MessageAction():
            _append_note(new, action.text, author=author, now=now)
        case DeclineAction() | HoldAction() | FailAction() | CancelAction():
            _move(new, _action_name(action), reason=_coded(action.reason, action.text))
        case AcceptAction() | ResumeAction():
            _move(new, _action_name(action))
        case StartAction():
            _move(new, "start")
            new.setdefault("executionPeriod", {}).setdefault("start", now)
        case CompleteAction():
            _complete(new, action, author=author, now=now, procedure_reference=procedure_reference)
    return new


def _action_name(action: ReferralAction) -> str:
    return _NAMES[type(action)]


def _move(task: Resource, action: str, *, reason: dict[str, Any] | None = None) -> None:
    """Set the status ``action`` leads to; a stale reason never outlives its status."""
    task["status"] = TARGET_STATUS[action]
    if reason is None:
        task.pop("statusReason", None)
    else:
        task["statusReason"] = reason


def _coded(code: str, text: str | None) -> dict[str, Any]:
    """A CodeableConcept in our reason CodeSystem; Gravity requires ``.text`` (§3.1, P-2)."""
    display = display_of(code) or code
    return {
        "coding": [{"system": REASON_SYSTEM, "code": code, "display": display}],
        "text": text or display,
    }


def _complete(
    task: Resource,
    action: CompleteAction,
    *,
    author: str,
    now: str,
    procedure_reference: str | None,
) -> None:
    """completed + output[resulting-activity] → the Procedure (gravity.md §2.8 item 7, §3.3)."""
    if procedure_reference is None:
        raise ValueError("completing needs procedure_reference: create the Procedure first")
    _move(task, "complete")
    task.setdefault("output", []).append(
        {
            "type": {
                "coding": [
                    {
                        "system": SDOHCC_TEMPORARY_CODES,
                        "code": RESULTING_ACTIVITY,
                        "display": "Resulting Activity",
                    }
                ]
            },
            "valueReference": {"reference": procedure_reference, "type": "Procedure"},
        }
    )
    task["businessStatus"] = _coded(action.outcome, None)
    task.setdefault("executionPeriod", {})["end"] = now
    if action.note:
        _append_note(task, action.note, author=author, now=now)


def _append_note(task: Resource, text: str, *, author: str, now: str) -> None:
    task.setdefault("note", []).append(
        {"authorReference": {"reference": author}, "time": now, "text": text}
    )


__all__ = [
    "AcceptAction",
    "CancelAction",
    "CodingIn",
    "CompleteAction",
    "DeclineAction",
    "FailAction",
    "HoldAction",
    "MessageAction",
    "ReferralAction",
    "ResumeAction",
    "StartAction",
    "procedure_from_completion",
    "task_from_action",
]
