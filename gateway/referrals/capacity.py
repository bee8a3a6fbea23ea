"""A CBO's capacity: the Gravity capacity-status extension on its HealthcareServices.

http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition-SDOHCC-ExtensionHealthcareServiceCapacityStatus.html
"""

import copy
from typing import Any

import orjson
from sqlalchemy import Connection, select

from conformance.terminology import SDOHCC_TEMPORARY_CODES
from gateway.store import resource_rows
from gateway.store.tables import reference_table

REF = reference_table.c

CAPACITY_EXTENSION = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
    "SDOHCC-ExtensionHealthcareServiceCapacityStatus"
)


def capacity_of(service: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(status code, note)`` from a HealthcareService, or ``(None, None)`` when unset."""
    for extension in service.get("extension") or []:
        if extension.get("url") != CAPACITY_EXTENSION:
            continue
        status = note = None
        for part in extension.get("extension") or []:
            if part.get("url") == "capacityStatus":
                codings = (part.get("valueCodeableConcept") or {}).get("coding") or []
                status = next((c.get("code") for c in codings if c.get("code")), None)
            elif part.get("url") == "capacityNotes":
                note = part.get("valueString")
        return status, note
    return None, None


def with_capacity(service: dict[str, Any], status: str, note: str | None) -> dict[str, Any]:
    """A copy of ``service`` whose capacity extension says ``status`` (and ``note``)."""
    updated = copy.deepcopy(service)
    parts: list[dict[str, Any]] = [
        {
            "url": "capacityStatus",
            "valueCodeableConcept": {
                "coding": [{"system": SDOHCC_TEMPORARY_CODES, "code": status}]
            },
        }
    ]
    if note:
        parts.append({"url": "capacityNotes", "valueString": note})
    others = [e for e in updated.get("extension") or [] if e.get("url") != CAPACITY_EXTENSION]
    updated["extension"] = [*others, {"url": CAPACITY_EXTENSION, "extension": parts}]
    return updated


def new_service(organization: str, service_id: str, name: str | None) -> dict[str, Any]:
    """The HealthcareService a CBO without one gets when it first states its capacity."""
    return {
        "resourceType": "HealthcareService",
        "id": service_id,
        "active": True,
        "providedBy": {"reference": organization},
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
                        "code": "sdoh",
                    }
                ]
            }
        ],
        "name": name or "Services",
    }


def services_of(connection: Connection, organization: str) -> list[dict[str, Any]]:
    """The HealthcareServices ``organization`` provides (``providedBy``), by id."""
    organization_type, _, organization_id = organization.partition("/")
    ids = connection.execute(
        select(REF.resource_id).where(
            REF.resource_type == "HealthcareService",
            REF.param == "organization",
            REF.target_type == organization_type,
            REF.target_id == organization_id,
            REF.target_base == "",
        )
    ).scalars()
    found = resource_rows.current_many(connection, [("HealthcareService", i) for i in ids])
    return [orjson.loads(found[key].body or "{}") for key in sorted(found)]


def organization_at_capacity(connection: Connection, organization: str) -> bool:
    """True when the organization states a capacity and every stated one is ``no-capacity``
    (a waitlist still takes referrals)."""
    stated = [s for s in (capacity_of(x)[0] for x in services_of(connection, organization)) if s]
    return bool(stated) and all(status == "no-capacity" for status in stated)
