"""FHIR → the CBO's JSON referral view: one pure function over everything fetched for a referral.

Minimum necessary (reference/gravity.md §7, §10): contact data is dropped when the SR says
``contacting-subject-prohibited``; every client detail, and the clinical reasons, are withheld
while the partner requires consent and no active Consent covers the disclosure. Status, need,
service, due date, referrer, notes and timeline stay, so the referral remains workable.
"""

from datetime import datetime
from typing import cast

from conformance.references import reference_type
from conformance.terminology import REQUEST_PRIORITY
from fhir_mappings._fhir_json import Resource, obj, objs, reference_text, same_resource, text
from fhir_mappings.action_moves import allowed_actions
from fhir_mappings.client_details import client_view_from_fhir
from fhir_mappings.consent_state import consent_view_from_fhir
from fhir_mappings.due_date import due_from_fhir
from fhir_mappings.outcome import outcome_view_from_fhir
from fhir_mappings.referral_record import DisclosurePolicy, ReferralRecord, TaskChange
from fhir_mappings.referrer import referrer_view_from_fhir
from fhir_mappings.request_details import (
    concept_view_from_fhir,
    contact_prohibited,
    need_view_from_fhir,
    reasons_from_fhir,
)
from fhir_mappings.timeline import (
    created_at,
    status_reason_view_from_fhir,
    task_versions,
    timeline_from_history,
)
from fhir_mappings.view_models import (
    MessageView,
    Priority,
    ReferralView,
    TaskStatus,
)

_CLIENT_TYPES = frozenset({"Patient", "RelatedPerson"})


def referral_view_from_fhir(
    record: ReferralRecord, *, policy: DisclosurePolicy, now: datetime | None = None
) -> ReferralView:
    """The view of ``record`` for the Task's owner under ``policy``.

    ``now`` (aware) lets a Consent's provision period be checked; without it, periods are
    not checked.
    """
    task = record.task
    request = record.service_request
    subject = reference_text(task.get("for"))
    consent = consent_view_from_fhir(
        record.consents,
        subject=subject,
        recipient=reference_text(task.get("owner")),
        required=policy.consent_required,
        now=now,
    )
    withheld = policy.consent_required and not consent.covers_disclosure
    versions = task_versions(task, record.history)
    status = str(task.get("status"))
    return ReferralView(
        id=str(task.get("id")),
        version=text(obj(task.get("meta")).get("versionId")),
        status=cast(TaskStatus, status),
        status_reason=status_reason_view_from_fhir(task),
        business_status=_business_status(task),
        priority=_priority(task, request),
        created=created_at(task, versions),
        updated=text(obj(task.get("meta")).get("lastUpdated")),
        due=due_from_fhir(task, versions, policy=policy),
        need=need_view_from_fhir(request),
        service=concept_view_from_fhir(request.get("code")) if request else None,
        reasons=[] if withheld else reasons_from_fhir(request, record.reasons),
        referrer=referrer_view_from_fhir(
            task,
            role=record.requester_role,
            practitioner=record.requester_practitioner,
            organization=record.requester_organization,
        ),
        client=client_view_from_fhir(
            record.patient, withheld=withheld, contact_prohibited=contact_prohibited(request)
        ),
        consent=consent,
        messages=_messages(task, subject=subject, hide_client=withheld),
        outcome=outcome_view_from_fhir(task, record.procedures),
        timeline=timeline_from_history(versions),
        allowed_actions=allowed_actions(status),
    )


def _business_status(task: Resource) -> str | None:
    concept = obj(task.get("businessStatus"))
    return text(concept.get("text")) or next(
        (text(c.get("display")) for c in objs(concept.get("coding")) if text(c.get("display"))),
        None,
    )


def _priority(task: Resource, request: Resource | None) -> Priority | None:
    for value in (task.get("priority"), (request or {}).get("priority")):
        if value in REQUEST_PRIORITY:
            return cast(Priority, value)
    return None


def _messages(task: Resource, *, subject: str | None, hide_client: bool) -> list[MessageView]:
    """Task.note as messages; while client details are withheld, a note by the client (or
    someone for them) shows no author."""
    messages = []
    for note in objs(task.get("note")):
        body = text(note.get("text"))
        if body is None:
            continue
        author = obj(note.get("authorReference"))
        reference = reference_text(author)
        by_client = reference_type(author) in _CLIENT_TYPES or same_resource(reference, subject)
        hidden = hide_client and by_client
        display = text(author.get("display")) or text(note.get("authorString"))
        messages.append(
            MessageView(
                author=None if hidden else reference,
                author_display=None if hidden else display,
                time=text(note.get("time")),
                text=body,
            )
        )
    return messages


__all__ = [
    "DisclosurePolicy",
    "ReferralRecord",
    "ReferralView",
    "TaskChange",
    "referral_view_from_fhir",
]
