"""SDOHCC ServiceRequest rules (reference/gravity.md §4.1, US Core 7 ServiceRequest parent).

http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest
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
)
from conformance.terminology import (
    REQUEST_INTENT,
    REQUEST_PRIORITY,
    REQUEST_STATUS,
    SDOH_CATEGORIES,
    SDOHCC_TEMPORARY_CODES,
)


def service_request_issues(request: dict[str, Any]) -> list[Issue]:
    issues = compact(
        [
            code_in(
                request.get("status"), REQUEST_STATUS, "ServiceRequest.status", "request status"
            ),
            code_in(
                request.get("intent"), REQUEST_INTENT, "ServiceRequest.intent", "request intent"
            ),
            code_in(
                request.get("priority"),
                REQUEST_PRIORITY,
                "ServiceRequest.priority",
                "request priority",
            ),
            required(request, "code", "ServiceRequest.code"),
            None
            if "code" not in request or has_any_code(request["code"])
            else Issue(
                "ServiceRequest.code must carry a coded service (a coding with a code)",
                ("ServiceRequest.code.coding",),
                "required",
            ),
            required(request, "subject", "ServiceRequest.subject"),
            reference_to(
                request.get("subject"),
                {"Patient", "Group", "Location"},
                "ServiceRequest.subject",
                "a Patient, Group or Location",
            ),
            _prohibited(request, "specimen"),
            _prohibited(request, "bodySite"),
        ]
    )
    for i, category in enumerate(request.get("category") or []):
        for code in codes_from(category, SDOHCC_TEMPORARY_CODES):
            if code not in SDOH_CATEGORIES:
                issues.append(
                    Issue(
                        "ServiceRequest.category uses a code that is not an SDOH category",
                        (f"ServiceRequest.category[{i}]",),
                        "code-invalid",
                    )
                )
    return issues


def _prohibited(request: dict[str, Any], element: str) -> Issue | None:
    if element in request:
        return Issue(
            f"ServiceRequest.{element} is not allowed by the SDOHCC profile",
            (f"ServiceRequest.{element}",),
            "invariant",
        )
    return None
