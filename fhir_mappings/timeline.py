"""The referral's status changes, oldest first, each with who made it (from its Provenance).

Only references identify people here (``Provenance.agent.who`` / ``onBehalfOf``), never names,
so a client acting on their own referral is not named in the view.
"""

from collections.abc import Sequence
from typing import cast

from fhir_mappings._fhir_json import Resource, coding_in, codings, obj, objs, reference_text, text
from fhir_mappings.reasons import REASON_SYSTEM
from fhir_mappings.referral_record import TaskChange
from fhir_mappings.view_models import StatusChange, StatusReasonView, TaskStatus

PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
_ACCEPTED_OR_LATER = frozenset({"accepted", "in-progress", "on-hold", "completed", "failed"})


def task_versions(task: Resource, history: Sequence[TaskChange]) -> list[TaskChange]:
    """``history`` with the current Task appended when the history does not end with it."""
    versions = list(history)
    if not versions or not _same_version(versions[-1].task, task):
        versions.append(TaskChange(task=task))
    return versions


def timeline_from_history(versions: Sequence[TaskChange]) -> list[StatusChange]:
    changes = []
    previous: str | None = None
    for change in versions:
        status = change.task.get("status")
        if not isinstance(status, str) or status == previous:
            continue
        who, on_behalf_of = _author(change.provenance)
        changes.append(
            StatusChange(
                from_status=cast(TaskStatus | None, previous),
                to_status=cast(TaskStatus, status),
                time=changed_at(change),
                version=_version_id(change.task),
                reason=status_reason_view_from_fhir(change.task),
                who=who,
                on_behalf_of=on_behalf_of,
            )
        )
        previous = status
    return changes


def changed_at(change: TaskChange) -> str | None:
    """When a version was stored: its meta.lastUpdated, else its Provenance, else lastModified."""
    return (
        text(obj(change.task.get("meta")).get("lastUpdated"))
        or text(obj(change.provenance).get("recorded"))
        or text(change.task.get("lastModified"))
    )


def created_at(task: Resource, versions: Sequence[TaskChange]) -> str | None:
    """Task.authoredOn, else when its first known version was stored."""
    return text(task.get("authoredOn")) or (changed_at(versions[0]) if versions else None)


def accepted_at(versions: Sequence[TaskChange]) -> str | None:
    """When the owner accepted: the first version past ``accepted`` (in-progress when the
    history misses the accept itself, since no other move leads there)."""
    return next(
        (changed_at(v) for v in versions if v.task.get("status") in _ACCEPTED_OR_LATER), None
    )


def status_reason_view_from_fhir(task: Resource) -> StatusReasonView | None:
    reason = obj(task.get("statusReason"))
    reason_text = text(reason.get("text"))
    if reason_text is None:
        return None
    coding = coding_in(reason, REASON_SYSTEM)
    return StatusReasonView(code=coding["code"] if coding else None, text=reason_text)


def _author(provenance: Resource | None) -> tuple[str | None, str | None]:
    agents = objs(obj(provenance).get("agent"))
    author = next((a for a in agents if _is_author(a)), agents[0] if agents else None)
    if author is None:
        return None, None
    return reference_text(author.get("who")), reference_text(author.get("onBehalfOf"))


def _is_author(agent: Resource) -> bool:
    return any(
        c.get("system") == PARTICIPANT_TYPE and c.get("code") == "author"
        for c in codings(agent.get("type"))
    )


def _same_version(stored: Resource, current: Resource) -> bool:
    stored_id, current_id = _version_id(stored), _version_id(current)
    if stored_id is not None and current_id is not None:
        return stored_id == current_id
    return stored == current


def _version_id(task: Resource) -> str | None:
    return text(obj(task.get("meta")).get("versionId"))
