"""SDOHCC TaskForReferralManagement rules (reference/gravity.md §3.1).

http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement
"""

from typing import Any

from conformance.errors import Issue
from conformance.profiles._rules import (
    code_in,
    codes_from,
    compact,
    has_coding,
    reference_to,
    required,
)
from conformance.resource_types import TASK_FOR_PATIENT
from conformance.task_lifecycle import REASON_REQUIRED_STATUSES, REFERRAL_TASK_STATUSES
from conformance.terminology import (
    ADDITIONAL_CONTENT,
    REQUEST_PRIORITY,
    RESULTING_ACTIVITY,
    SDOHCC_TEMPORARY_CODES,
    TASK_CODE_SYSTEM,
)

_VALUE_KEYS_REFERENCE = ("valueReference",)


def task_issues(task: dict[str, Any]) -> list[Issue]:
    profiles = (task.get("meta") or {}).get("profile") or []
    if TASK_FOR_PATIENT in profiles:
        return [
            Issue(
                "Tasks for patients (SDOHCC-TaskForPatient) are not supported; Loopgate manages "
                "referral Tasks (SDOHCC-TaskForReferralManagement)",
                ("Task.meta.profile",),
                "not-supported",
            )
        ]
    status = task.get("status")
    issues = compact(
        [
            code_in(
                status,
                REFERRAL_TASK_STATUSES,
                "Task.status",
                "referral Task status (received and ready are not used)",
            ),
            None
            if task.get("intent") == "order"
            else Issue("Task.intent must be 'order'", ("Task.intent",), "value"),
            None
            if has_coding(task.get("code"), TASK_CODE_SYSTEM, "fulfill")
            else Issue(f"Task.code must carry {TASK_CODE_SYSTEM}#fulfill", ("Task.code",), "value"),
            required(task, "focus", "Task.focus"),
            reference_to(task.get("focus"), {"ServiceRequest"}, "Task.focus", "a ServiceRequest"),
            required(task, "for", "Task.for"),
            reference_to(
                task.get("for"),
                {"Patient", "Group", "RelatedPerson"},
                "Task.for",
                "a Patient, Group or RelatedPerson",
            ),
            required(task, "authoredOn", "Task.authoredOn"),
            required(task, "requester", "Task.requester"),
            reference_to(
                task.get("requester"),
                {"PractitionerRole", "Organization"},
                "Task.requester",
                "a PractitionerRole or an Organization",
            ),
            code_in(task.get("priority"), REQUEST_PRIORITY, "Task.priority", "request priority"),
        ]
    )
    issues.extend(_status_reason_issues(task, status))
    issues.extend(_part_of_issues(task))
    issues.extend(_input_issues(task))
    issues.extend(_output_issues(task))
    return issues


def _status_reason_issues(task: dict[str, Any], status: Any) -> list[Issue]:
    reason = task.get("statusReason")
    has_text = isinstance(reason, dict) and bool(reason.get("text"))
    if reason is not None and not has_text:
        return [
            Issue(
                "Task.statusReason.text is required whenever statusReason is sent",
                ("Task.statusReason.text",),
                "required",
            )
        ]
    if status in REASON_REQUIRED_STATUSES and not has_text:
        return [
            Issue(
                f"A Task that is {status} must say why in Task.statusReason.text",
                ("Task.statusReason.text",),
                "required",
            )
        ]
    return []


def _part_of_issues(task: dict[str, Any]) -> list[Issue]:
    return compact(
        [
            reference_to(part, {"Task"}, f"Task.partOf[{i}]", "a Task")
            for i, part in enumerate(task.get("partOf") or [])
        ]
    )


def _input_issues(task: dict[str, Any]) -> list[Issue]:
    issues = []
    for i, item in enumerate(task.get("input") or []):
        if ADDITIONAL_CONTENT in set(codes_from(item.get("type"), SDOHCC_TEMPORARY_CODES)) and (
            "valueReference" not in item
        ):
            issues.append(
                Issue(
                    "Additional content must be given as valueReference",
                    (f"Task.input[{i}].value",),
                    "invariant",
                )
            )
    return issues


def _output_issues(task: dict[str, Any]) -> list[Issue]:
    issues: list[Issue | None] = []
    for i, item in enumerate(task.get("output") or []):
        codes = set(codes_from(item.get("type"), SDOHCC_TEMPORARY_CODES))
        path = f"Task.output[{i}]"
        if RESULTING_ACTIVITY in codes:
            if "valueReference" in item:
                issues.append(
                    reference_to(
                        item["valueReference"],
                        {"Procedure"},
                        f"{path}.valueReference",
                        "a Procedure",
                    )
                )
            elif "valueCodeableConcept" not in item:
                issues.append(
                    Issue(
                        "A resulting activity is a Procedure reference or a procedure code",
                        (f"{path}.value",),
                        "invariant",
                    )
                )
        elif ADDITIONAL_CONTENT in codes and "valueReference" not in item:
            issues.append(
                Issue(
                    "Additional content must be given as valueReference",
                    (f"{path}.value",),
                    "invariant",
                )
            )
    return compact(issues)
