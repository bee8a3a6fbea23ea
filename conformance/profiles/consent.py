"""SDOHCC Consent rules, with R4's ppc-1 (reference/gravity.md §5.1, P-21).

http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Consent
"""

from typing import Any

from conformance.errors import Issue
from conformance.profiles._rules import (
    code_in,
    compact,
    has_coding,
    reference_to,
    required,
    required_one_of,
)
from conformance.terminology import ACT_CODE_SYSTEM, CONSENT_STATE


def consent_issues(consent: dict[str, Any]) -> list[Issue]:
    categories = consent.get("category") or []
    return compact(
        [
            code_in(consent.get("status"), CONSENT_STATE, "Consent.status", "consent state"),
            None
            if any(has_coding(c, ACT_CODE_SYSTEM, "IDSCL") for c in categories)
            else Issue(
                f"Consent.category must include {ACT_CODE_SYSTEM}#IDSCL (information disclosure)",
                ("Consent.category",),
                "required",
            ),
            required(consent, "patient", "Consent.patient"),
            reference_to(consent.get("patient"), {"Patient"}, "Consent.patient", "a Patient"),
            required(consent, "dateTime", "Consent.dateTime"),
            required(consent, "organization", "Consent.organization"),
            required_one_of(consent, ("sourceAttachment", "sourceReference"), "Consent.source[x]"),
            # ppc-1: either a policy or a policyRule SHALL be provided
            required_one_of(consent, ("policy", "policyRule"), "Consent.policy"),
        ]
    )
