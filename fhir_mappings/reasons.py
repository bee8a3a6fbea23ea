"""Loopgate's published CodeSystem of referral reasons and outcomes, and which action uses which.

Gravity binds no value set to ``Task.statusReason`` (reference/gravity.md P-2, P-9), so decline,
hold, fail and cancel reasons, and completion outcomes, come from this small CodeSystem of ours.
The per-action ``Literal`` types are the single source of which action accepts which code.
"""

from dataclasses import dataclass
from typing import Any, Literal, get_args

REASON_SYSTEM = "urn:loopgate:codesystem:referral-reason"
REASON_CODESYSTEM_ID = "loopgate-referral-reason"

DeclineReason = Literal[
    "no-capacity",
    "not-eligible",
    "out-of-service-area",
    "unable-to-contact",
    "client-declined",
    "duplicate",
    "missing-information",
    "service-not-offered",
    "client-moved",
    "referral-error",
    "other",
]
HoldReason = Literal[
    "waitlisted",
    "needs-client-action",
    "unable-to-contact",
    "missing-information",
    "no-capacity",
    "service-paused",
    "other",
]
FailReason = Literal[
    "unable-to-contact",
    "client-declined",
    "not-eligible",
    "client-moved",
    "no-capacity",
    "other",
]
CancelReason = Literal[
    "client-declined",
    "duplicate",
    "referral-error",
    "not-eligible",
    "out-of-service-area",
    "service-not-offered",
    "client-moved",
    "unable-to-contact",
    "no-capacity",
    "other",
]
OutcomeCode = Literal[
    "service-provided",
    "enrolled",
    "partially-provided",
    "information-provided",
    "referred-elsewhere",
    "other",
]
CodedAction = Literal["decline", "hold", "fail", "cancel", "complete"]

CODES_BY_ACTION: dict[str, tuple[str, ...]] = {
    "decline": get_args(DeclineReason),
    "hold": get_args(HoldReason),
    "fail": get_args(FailReason),
    "cancel": get_args(CancelReason),
    "complete": get_args(OutcomeCode),
}
"""Which codes each JSON action accepts (decline/hold/fail/cancel: reasons; complete: outcomes)."""


@dataclass(frozen=True)
class Concept:
    code: str
    display: str
    definition: str

    @property
    def actions(self) -> tuple[str, ...]:
        """The JSON actions that accept this code."""
        return tuple(actions_for(self.code))


CONCEPTS: dict[str, Concept] = {
    concept.code: concept
    for concept in (
        Concept(
            "no-capacity",
            "No capacity",
            "The organization cannot take the client on now: no places, staff or funds left.",
        ),
        Concept(
            "not-eligible",
            "Client not eligible",
            "The client does not meet the program's eligibility rules (income, age, household…).",
        ),
        Concept(
            "out-of-service-area",
            "Out of service area",
            "The client lives or needs the service outside the area the organization serves.",
        ),
        Concept(
            "unable-to-contact",
            "Unable to contact client",
            "The organization tried to reach the client and could not.",
        ),
        Concept(
            "client-declined",
            "Client declined",
            "The client does not want the service, or withdrew from it.",
        ),
        Concept(
            "duplicate",
            "Duplicate referral",
            "The same need is already covered by another referral to this organization.",
        ),
        Concept(
            "waitlisted",
            "Client waitlisted",
            "The client is on the organization's waiting list; work resumes when a place opens.",
        ),
        Concept(
            "needs-client-action",
            "Waiting for the client",
            "Work is paused until the client acts: documents, an appointment, an application.",
        ),
        Concept(
            "missing-information",
            "Information missing",
            "The referral lacks information the organization needs; the referrer should add it.",
        ),
        Concept(
            "service-not-offered",
            "Service not offered",
            "The organization does not provide the requested service.",
        ),
        Concept(
            "service-paused",
            "Service temporarily paused",
            "The program is paused for a while (funding, staffing, season).",
        ),
        Concept(
            "client-moved",
            "Client moved",
            "The client has moved and can no longer be served by this organization.",
        ),
        Concept(
            "referral-error",
            "Referral sent in error",
            "The referral was sent to the wrong organization or for the wrong client or need.",
        ),
        Concept(
            "service-provided",
            "Service provided",
            "The requested service was delivered in full.",
        ),
        Concept(
            "enrolled",
            "Client enrolled",
            "The client was enrolled in the program that meets the need.",
        ),
        Concept(
            "partially-provided",
            "Service partially provided",
            "Part of the requested service was delivered; the rest is not expected.",
        ),
        Concept(
            "information-provided",
            "Information provided",
            "The client received information, advice or navigation rather than a service.",
        ),
        Concept(
            "referred-elsewhere",
            "Referred elsewhere",
            "The organization connected the client to another provider that meets the need.",
        ),
        Concept(
            "other",
            "Other",
            "None of the other codes fits; the accompanying text says what happened.",
        ),
    )
}

ReasonCode = Literal[
    "no-capacity",
    "not-eligible",
    "out-of-service-area",
    "unable-to-contact",
    "client-declined",
    "duplicate",
    "waitlisted",
    "needs-client-action",
    "missing-information",
    "service-not-offered",
    "service-paused",
    "client-moved",
    "referral-error",
    "other",
]
"""Every code a status reason (decline, hold, fail, cancel) may carry."""


def display_of(code: str) -> str | None:
    concept = CONCEPTS.get(code)
    return concept.display if concept else None


def actions_for(code: str) -> list[str]:
    """The JSON actions that accept ``code``, in the order decline, hold, fail, cancel, complete."""
    return [action for action, codes in CODES_BY_ACTION.items() if code in codes]


def reason_codes() -> tuple[str, tuple[Concept, ...]]:
    """The system URI and every concept, for a plain JSON listing of the codes."""
    return REASON_SYSTEM, tuple(CONCEPTS.values())


def reason_codesystem() -> dict[str, Any]:
    """The FHIR R4 CodeSystem resource Loopgate serves for ``REASON_SYSTEM``.

    http://hl7.org/fhir/R4/codesystem.html; the ``action`` property lists the JSON actions a
    code may be used with.
    """
    return {
        "resourceType": "CodeSystem",
        "id": REASON_CODESYSTEM_ID,
        "url": REASON_SYSTEM,
        "version": "1.0.0",
        "name": "LoopgateReferralReason",
        "title": "Loopgate referral reasons and outcomes",
        "status": "active",
        "experimental": False,
        "publisher": "Loopgate",
        "description": (
            "Why a community organization declined, paused, failed or cancelled a referral "
            "(Task.statusReason), and what came of a completed one (Task.businessStatus)."
        ),
        "caseSensitive": True,
        "content": "complete",
        "count": len(CONCEPTS),
        "property": [
            {
                "code": "action",
                "description": (
                    "A Loopgate JSON API action that accepts this code: decline, hold, fail "
                    "or cancel (a status reason) or complete (an outcome)."
                ),
                "type": "code",
            }
        ],
        "concept": [
            {
                "code": concept.code,
                "display": concept.display,
                "definition": concept.definition,
                "property": [{"code": "action", "valueCode": a} for a in concept.actions],
            }
            for concept in CONCEPTS.values()
        ],
    }
