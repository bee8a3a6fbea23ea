"""Referral records for the mapping tests, built from the shared examples, and a fake store step.

``apply`` plays the gateway: it maps an action, runs the same profile and edit-rights checks the
workflow runs, stores the new version (meta, Provenance) and returns the record it would load.
"""

import copy
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from conformance.access import AccessContext
from conformance.profiles import check_profile
from conformance.references import reference_key
from conformance.task_rules import ProcedureFacts, TaskParties, check_task_update
from fhir_mappings import (
    CompleteAction,
    DisclosurePolicy,
    ReferralAction,
    ReferralRecord,
    TaskChange,
    procedure_from_completion,
    task_from_action,
)
from tests.conformance.examples import (
    EHR_BASE,
    TEMP_CODES,
    consent,
    patient,
    service_request,
    task_requested,
)

Resource = dict[str, Any]

HOSPITAL = "Organization/mercy-hospital"
CBO = "Organization/cbo-eastside-food"
CBO_USER = "Practitioner/cbo-staff-lee"
REQUESTER_ROLE_REF = f"{EHR_BASE}/PractitionerRole/prr-dr-okafor"
FOCUS_KEY = f"{EHR_BASE}/ServiceRequest/sr-food-2001"
NEW_PROCEDURE = "Procedure/proc-new"
PARTIES = TaskParties(requester=HOSPITAL, owner=CBO, has_owner=True)
AS_CBO = AccessContext(organization=CBO, user=CBO_USER)
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
START = datetime(2025, 3, 10, 19, 6, tzinfo=UTC)

OPEN_POLICY = DisclosurePolicy(consent_required=False)
CONSENT_POLICY = DisclosurePolicy(consent_required=True)
SLA_POLICY = DisclosurePolicy(consent_required=False, respond_within_hours=48, close_within_days=30)


def instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def requester_role() -> Resource:
    return {
        "resourceType": "PractitionerRole",
        "id": "prr-dr-okafor",
        "practitioner": {"reference": "Practitioner/dr-okafor", "display": "Dr. Amara Okafor"},
        "organization": {"reference": HOSPITAL, "display": "Mercy Hospital"},
        "code": [{"coding": [{"code": "doctor", "display": "Doctor"}], "text": "Family physician"}],
        "telecom": [{"system": "phone", "value": "+1-555-100-2000", "use": "work"}],
    }


def requester_practitioner() -> Resource:
    return {
        "resourceType": "Practitioner",
        "id": "dr-okafor",
        "name": [{"use": "official", "family": "Okafor", "given": ["Amara"], "prefix": ["Dr."]}],
        "telecom": [
            {"system": "email", "value": "a.okafor@mercy.example.org", "use": "work"},
            {"system": "phone", "value": "+1-555-100-2000", "use": "work"},
        ],
    }


def requester_organization() -> Resource:
    return {
        "resourceType": "Organization",
        "id": "mercy-hospital",
        "name": "Mercy Hospital",
        "telecom": [{"system": "phone", "value": "+1-555-100-0000"}],
    }


def condition() -> Resource:
    return {
        "resourceType": "Condition",
        "id": "cond-food-1001",
        "code": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "733423003",
                    "display": "Food insecurity",
                },
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "Z59.4"},
            ]
        },
    }


def task_at(status: str = "requested", version: int = 1, **changes: Any) -> Resource:
    """The example Task, owned by the CBO, stored as ``version`` an hour per version after START."""
    task = task_requested()
    task.update(status=status, **changes)
    return stored(task, version=version, at=START + timedelta(hours=version - 1))


def stored(task: Resource, *, version: int, at: datetime) -> Resource:
    """``task`` as the store keeps it: with its version id and time."""
    saved = copy.deepcopy(task)
    saved["meta"] = {**saved.get("meta", {}), "versionId": str(version), "lastUpdated": instant(at)}
    return saved


def provenance(task: Resource, *, who: str, on_behalf_of: str | None) -> Resource:
    """What the gateway records for a change (gateway/fhir/task_workflow.py's shape)."""
    agent: Resource = {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]},
        "who": {"reference": who},
    }
    if on_behalf_of:
        agent["onBehalfOf"] = {"reference": on_behalf_of}
    meta = task["meta"]
    return {
        "resourceType": "Provenance",
        "target": [{"reference": f"Task/{task['id']}/_history/{meta['versionId']}"}],
        "recorded": meta["lastUpdated"],
        "agent": [
            {
                "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "performer"}]},
                "who": {"identifier": {"value": "cbo-app"}},
            },
            agent,
        ],
    }


def full_record(task: Resource | None = None, **overrides: Any) -> ReferralRecord:
    """Every piece present: SR with reason and consent, patient, requester chain, history."""
    current = task or task_at()
    if "history" not in overrides:
        overrides["history"] = [
            TaskChange(current, provenance(current, who=HOSPITAL, on_behalf_of=None))
        ]
    record = ReferralRecord(
        task=current,
        service_request=service_request(),
        patient=patient(),
        consents=[consent()],
        reasons=[condition()],
        requester_role=requester_role(),
        requester_practitioner=requester_practitioner(),
        requester_organization=requester_organization(),
    )
    return replace(record, **overrides)


def prohibit_contact(request: Resource) -> Resource:
    changed = copy.deepcopy(request)
    changed["orderDetail"] = [
        {"coding": [{"system": TEMP_CODES, "code": "contacting-subject-prohibited"}]}
    ]
    return changed


@dataclass(frozen=True)
class Applied:
    old: Resource
    new: Resource
    procedure: Resource | None
    record: ReferralRecord


def apply(
    record: ReferralRecord,
    action: ReferralAction,
    *,
    at: datetime,
    user: str | None = CBO_USER,
) -> Applied:
    """Map ``action`` as the CBO, check it as the workflow would, and store it."""
    old, now = record.task, instant(at)
    made = None
    if isinstance(action, CompleteAction):
        made = procedure_from_completion(
            old,
            record.service_request,
            action,
            performer_organization=CBO,
            procedure_id=NEW_PROCEDURE.split("/")[1],
            now=now,
        )
        check_profile(made)
    new = task_from_action(
        old,
        action,
        actor_organization=CBO,
        actor_user=user,
        now=now,
        procedure_reference=NEW_PROCEDURE if made else None,
    )
    check_owner_edit(old, new, user=user)
    saved = stored(new, version=int(old["meta"]["versionId"]) + 1, at=at)
    change = TaskChange(
        saved, provenance(saved, who=user or CBO, on_behalf_of=CBO if user else None)
    )
    return Applied(
        old=old,
        new=new,
        procedure=made,
        record=replace(
            record,
            task=saved,
            procedures=[*record.procedures, *([made] if made else [])],
            history=[*record.history, change],
        ),
    )


def check_owner_edit(old: Resource, new: Resource, *, user: str | None = CBO_USER) -> None:
    """The checks the workflow runs on an owner's update (profile, transition, edit rights)."""
    check_profile(new)
    focus = reference_key(new["focus"]["reference"])
    check_task_update(
        old,
        new,
        actor=AccessContext(organization=CBO, user=user),
        old_parties=PARTIES,
        new_parties=PARTIES,
        procedures={NEW_PROCEDURE: ProcedureFacts(exists=True, based_on=frozenset({focus or ""}))},
        focus_key=focus,
    )
