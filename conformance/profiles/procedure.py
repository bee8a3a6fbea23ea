"""SDOHCC Procedure rules, with US Core's us-core-7 (reference/gravity.md §5.1, P-14).

http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Procedure
"""

from typing import Any

from conformance.errors import Issue
from conformance.profiles._rules import (
    code_in,
    codes_from,
    compact,
    has_any_code,
    reference_to,
    required,
    required_one_of,
)
from conformance.terminology import EVENT_STATUS, SDOH_CATEGORIES, SDOHCC_TEMPORARY_CODES

_PERFORMED = (
    "performedDateTime",
    "performedPeriod",
    "performedString",
    "performedAge",
    "performedRange",
)


def procedure_issues(procedure: dict[str, Any]) -> list[Issue]:
    status = procedure.get("status")
    issues = compact(
        [
            code_in(status, EVENT_STATUS, "Procedure.status", "event status"),
            required(procedure, "code", "Procedure.code"),
            None
            if "code" not in procedure or has_any_code(procedure["code"])
            else Issue(
                "Procedure.code must carry a coded procedure (a coding with a code)",
                ("Procedure.code.coding",),
                "required",
            ),
            required(procedure, "subject", "Procedure.subject"),
            # us-core-7: performed SHALL be present if the status is completed or in-progress
            required_one_of(procedure, _PERFORMED, "Procedure.performed[x]")
            if status in ("completed", "in-progress")
            else None,
        ]
    )
    for code in codes_from(procedure.get("category"), SDOHCC_TEMPORARY_CODES):
        if code not in SDOH_CATEGORIES:
            issues.append(
                Issue(
                    "Procedure.category uses a code that is not an SDOH category",
                    ("Procedure.category",),
                    "code-invalid",
                )
            )
    for i, based_on in enumerate(procedure.get("basedOn") or []):
        issue = reference_to(
            based_on,
            {"ServiceRequest", "CarePlan"},
            f"Procedure.basedOn[{i}]",
            "a ServiceRequest or CarePlan",
        )
        if issue:
            issues.append(issue)
    return issues
