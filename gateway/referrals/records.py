"""Gather what the referral view needs about Tasks, in a handful of queries per page."""

from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import Connection, select

from conformance.references import parse_reference
from fhir_mappings import ReferralRecord, TaskChange
from gateway.store import resource_rows
from gateway.store.resource_rows import StoredVersion
from gateway.store.tables import reference_table, version_table

V, REF = version_table.c, reference_table.c


def load_records(
    connection: Connection, tasks: list[StoredVersion], *, fhir_base: str
) -> list[ReferralRecord]:
    """One ReferralRecord per Task, in order: its request, patient, consents, reasons,
    requester, procedures and every version with its Provenance."""
    bodies = [orjson.loads(t.body or "{}") for t in tasks]
    first = _fetch(connection, _first_hop(bodies, fhir_base), fhir_base)
    requests = [_resolve(first, b.get("focus"), fhir_base) for b in bodies]
    second_refs: list[tuple[str, str]] = []
    for request in requests:
        if request:
            second_refs += _keys_of(request.get("supportingInfo"), fhir_base)
            second_refs += _keys_of(request.get("reasonReference"), fhir_base)
    for body in bodies:
        role = _resolve(first, body.get("requester"), fhir_base)
        if role and role.get("resourceType") == "PractitionerRole":
            second_refs += _keys_of([role.get("practitioner"), role.get("organization")], fhir_base)
    second = _fetch(connection, second_refs, fhir_base)
    every = {**first, **second}
    histories = _histories(connection, [t.id for t in tasks])
    records = []
    for body, request in zip(bodies, requests, strict=True):
        role = _resolve(every, body.get("requester"), fhir_base)
        practitioner = organization = None
        if role and role.get("resourceType") == "PractitionerRole":
            practitioner = _resolve(every, role.get("practitioner"), fhir_base)
            organization = _resolve(every, role.get("organization"), fhir_base)
        elif role and role.get("resourceType") == "Organization":
            organization, role = role, None
        supporting = [
            every.get(k) for k in _keys_of((request or {}).get("supportingInfo"), fhir_base)
        ]
        reasons = [
            every.get(k) for k in _keys_of((request or {}).get("reasonReference"), fhir_base)
        ]
        outputs = [item.get("valueReference") for item in body.get("output") or []]
        records.append(
            ReferralRecord(
                task=body,
                service_request=request,
                patient=_resolve(every, body.get("for"), fhir_base),
                consents=[r for r in supporting if r and r.get("resourceType") == "Consent"],
                reasons=[r for r in reasons if r],
                requester_role=role,
                requester_practitioner=practitioner,
                requester_organization=organization,
                procedures=[
                    p
                    for p in (every.get(k) for k in _keys_of(outputs, fhir_base))
                    if p and p.get("resourceType") == "Procedure"
                ],
                history=histories.get(str(body.get("id")), []),
            )
        )
    return records


def _resolve(
    found: dict[tuple[str, str], dict[str, Any]], reference: Any, fhir_base: str
) -> dict[str, Any] | None:
    key = _key(reference, fhir_base)
    return found.get(key) if key else None


def _key(reference: Any, fhir_base: str) -> tuple[str, str] | None:
    value = reference.get("reference") if isinstance(reference, dict) else None
    parsed = parse_reference(value, local_base=fhir_base) if isinstance(value, str) else None
    return (parsed.resource_type, parsed.id) if parsed and parsed.is_local else None


def _keys_of(references: Any, fhir_base: str) -> list[tuple[str, str]]:
    items = references if isinstance(references, list) else [references]
    return [k for k in (_key(r, fhir_base) for r in items) if k]


def _first_hop(bodies: list[dict[str, Any]], fhir_base: str) -> list[tuple[str, str]]:
    """What each Task points at directly: its request, patient, requester and outputs."""
    keys: list[tuple[str, str]] = []
    for body in bodies:
        keys += _keys_of([body.get("focus"), body.get("for"), body.get("requester")], fhir_base)
        keys += _keys_of([o.get("valueReference") for o in body.get("output") or []], fhir_base)
    return keys


def _fetch(
    connection: Connection, keys: list[tuple[str, str]], fhir_base: str
) -> dict[tuple[str, str], dict[str, Any]]:
    found = resource_rows.current_many(connection, keys)
    return {key: orjson.loads(stored.body or "{}") for key, stored in found.items()}


def _histories(connection: Connection, task_ids: list[str]) -> dict[str, list[TaskChange]]:
    """Every version of each Task, oldest first, with the Provenance that recorded it."""
    if not task_ids:
        return {}
    versions = connection.execute(
        select(V.id, V.version_id, V.body)
        .where(V.resource_type == "Task", V.id.in_(task_ids))
        .order_by(V.id, V.version_id)
    ).all()
    provenance_ids = (
        connection.execute(
            select(REF.resource_id).where(
                REF.target_type == "Task",
                REF.target_id.in_(task_ids),
                REF.target_base == "",
                REF.resource_type == "Provenance",
            )
        )
        .scalars()
        .all()
    )
    by_target: dict[str, dict[str, Any]] = {}
    found = resource_rows.current_many(connection, [("Provenance", p) for p in provenance_ids])
    for stored in found.values():
        provenance = orjson.loads(stored.body or "{}")
        for target in provenance.get("target") or []:
            by_target[str(target.get("reference"))] = provenance
    histories: dict[str, list[TaskChange]] = defaultdict(list)
    for row in versions:
        if row.body is None:
            continue
        provenance = by_target.get(f"Task/{row.id}/_history/{row.version_id}")
        histories[row.id].append(TaskChange(task=orjson.loads(row.body), provenance=provenance))
    return histories
