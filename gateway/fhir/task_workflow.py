"""Apply the referral Task rules of ``conformance.task_rules`` to a write, and record Provenance.

The rules are pure; this module looks up what they need (the organizations behind
``Task.requester`` and ``Task.owner``, the Procedures a completion names) and writes one
Provenance per Task change, in the same database transaction as the change.
"""

from collections.abc import Mapping
from typing import Any

import orjson

from conformance.fhir_time import format_instant
from conformance.references import parse_reference, reference_key
from conformance.task_rules import (
    ProcedureFacts,
    TaskParties,
    check_task_create,
    check_task_delete,
    check_task_update,
    organization_of,
)
from gateway.fhir.ids import new_resource_id
from gateway.fhir.write_context import WriteContext
from gateway.store import resource_rows
from gateway.store.resource_rows import StoredVersion

_ORGANIZATION_HOLDERS = {"PractitionerRole", "HealthcareService"}
_DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
CLIENT_ID_SYSTEM = "urn:ietf:params:oauth:client-id"
_ACTIVITIES = {
    "create": ("CREATE", "create"),
    "update": ("UPDATE", "revise"),
    "delete": ("DELETE", "delete"),
}


class TaskWorkflow:
    """The referral rules at the store's edge: ``check_*`` before a write, ``provenance`` after."""

    def __init__(self, *, fhir_base: str) -> None:
        self.fhir_base = fhir_base

    def check_create(self, ctx: WriteContext, task: dict[str, Any]) -> TaskParties:
        """Apply the create rules; returns the new Task's parties."""
        parties = self._parties(ctx, task)
        check_task_create(
            task,
            actor=ctx.actor,
            parties=parties,
            procedures=self._procedures(ctx, task),
            focus_key=self._focus_key(task),
        )
        return parties

    def check_update(
        self, ctx: WriteContext, old: dict[str, Any], new: dict[str, Any]
    ) -> TaskParties:
        """Apply the update rules; returns the new version's parties."""
        resolved: dict[str, str | None] = {}  # the versions mostly name the same parties
        parties = self._parties(ctx, new, resolved)
        check_task_update(
            old,
            new,
            actor=ctx.actor,
            old_parties=self._parties(ctx, old, resolved),
            new_parties=parties,
            procedures=self._procedures(ctx, new),
            focus_key=self._focus_key(new),
        )
        return parties

    def check_delete(self, ctx: WriteContext, old: dict[str, Any]) -> None:
        check_task_delete(old, actor=ctx.actor, parties=self._parties(ctx, old))

    def provenance(self, ctx: WriteContext, stored: StoredVersion, activity: str) -> dict[str, Any]:
        """A Provenance for one Task version: who acted, for which organization, when."""
        code, display = _ACTIVITIES[activity]
        actor = ctx.actor
        agent: dict[str, Any] = {
            "type": {
                "coding": [{"system": _PARTICIPANT_TYPE, "code": "author", "display": "Author"}]
            },
        }
        if actor.user:
            agent["who"] = {"reference": actor.user}
            if actor.organization:
                agent["onBehalfOf"] = {"reference": actor.organization}
        elif actor.organization:
            agent["who"] = {"reference": actor.organization}
        else:
            agent["who"] = {"display": actor.label}
        agents = [agent]
        if actor.client_id and (actor.user or actor.organization):
            agents.append(
                {
                    "type": {
                        "coding": [
                            {
                                "system": _PARTICIPANT_TYPE,
                                "code": "performer",
                                "display": "Performer",
                            }
                        ]
                    },
                    "who": {"identifier": {"system": CLIENT_ID_SYSTEM, "value": actor.client_id}},
                }
            )
        return {
            "resourceType": "Provenance",
            "id": new_resource_id(),
            "target": [{"reference": f"Task/{stored.id}/_history/{stored.version_id}"}],
            "recorded": format_instant(ctx.now),
            "activity": {"coding": [{"system": _DATA_OPERATION, "code": code, "display": display}]},
            "agent": agents,
        }

    def _parties(
        self,
        ctx: WriteContext,
        task: Mapping[str, Any],
        resolved: dict[str, str | None] | None = None,
    ) -> TaskParties:
        """``resolved`` remembers, by role and reference text, what was already looked up."""
        memo = {} if resolved is None else resolved
        owner = task.get("owner")
        return TaskParties(
            requester=self._remembered(
                memo, "requester", ctx, task.get("requester"), {"PractitionerRole"}
            ),
            owner=self._remembered(memo, "owner", ctx, owner, _ORGANIZATION_HOLDERS),
            has_owner=bool(owner),
        )

    def _remembered(
        self,
        memo: dict[str, str | None],
        role: str,
        ctx: WriteContext,
        reference: Any,
        holders: set[str],
    ) -> str | None:
        value = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(value, str):
            return None
        key = f"{role} {value}"
        if key not in memo:
            memo[key] = self._organization_for(ctx, reference, holders)
        return memo[key]

    def _organization_for(self, ctx: WriteContext, reference: Any, holders: set[str]) -> str | None:
        """The organization a requester/owner Reference stands for, if Loopgate can tell."""
        value = reference.get("reference") if isinstance(reference, dict) else None
        parsed = parse_reference(value, local_base=self.fhir_base) if value else None
        if parsed is None:
            return None
        if parsed.resource_type == "Organization":
            return parsed.key
        if parsed.resource_type not in holders or not parsed.is_local:
            return None
        key = (parsed.resource_type, parsed.id)
        holder = resource_rows.current(ctx.reading([key]), *key)
        if holder is None or holder.deleted or holder.body is None:
            return None
        return reference_key(organization_of(orjson.loads(holder.body)), local_base=self.fhir_base)

    def _focus_key(self, task: Mapping[str, Any]) -> str | None:
        focus = task.get("focus")
        value = focus.get("reference") if isinstance(focus, dict) else None
        return reference_key(value, local_base=self.fhir_base)

    def _procedures(self, ctx: WriteContext, task: Mapping[str, Any]) -> dict[str, ProcedureFacts]:
        """What each Procedure named in ``Task.output`` is based on, keyed by reference text."""
        wanted: dict[str, tuple[str, str]] = {}
        for item in task.get("output") or []:
            value = (item.get("valueReference") or {}).get("reference")
            if not isinstance(value, str):
                continue
            parsed = parse_reference(value, local_base=self.fhir_base)
            if parsed and parsed.is_local and parsed.resource_type == "Procedure":
                wanted[value] = ("Procedure", parsed.id)
        if not wanted:
            return {}
        stored = resource_rows.current_many(ctx.reading(wanted.values()), wanted.values())
        facts = {}
        for value, key in wanted.items():
            version = stored.get(key)
            if version is None or version.body is None:
                facts[value] = ProcedureFacts(exists=False)
                continue
            based_on = orjson.loads(version.body).get("basedOn") or []
            keys = {
                reference_key(item.get("reference"), local_base=self.fhir_base)
                for item in based_on
                if isinstance(item, dict)
            }
            facts[value] = ProcedureFacts(exists=True, based_on=frozenset(k for k in keys if k))
        return facts
