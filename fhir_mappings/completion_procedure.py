"""A completion → the SDOHCC Procedure that records the service delivered.

http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Procedure (reference/
gravity.md §5.1, P-14): based on the referral's ServiceRequest, the SDOH category in
``category.coding``, a coded service, the client, and ``performed[x]`` (us-core-7). Copies what
the Gravity Light CBO reference client copies from the ServiceRequest (§2.8 item 7).
"""

import copy
from datetime import datetime, timedelta
from typing import Any

from conformance.errors import Unprocessable
from conformance.resource_types import SDOHCC_PROCEDURE
from fhir_mappings._fhir_json import (
    Resource,
    absolute,
    codings,
    obj,
    objs,
    parse_datetime,
    reference_text,
    server_base,
    text,
)
from fhir_mappings.action_models import CodingIn, CompleteAction
from fhir_mappings.request_details import sdoh_codings

PERTAINS_TO_GOAL = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"
_CLOCK_SKEW = timedelta(minutes=5)


def procedure_from_completion(
    task: Resource,
    service_request: Resource | None,
    action: CompleteAction,
    *,
    performer_organization: str,
    procedure_id: str,
    now: str,
) -> Resource:
    """The Procedure to store before the completed Task names it in ``Task.output``.

    Raises ``Unprocessable`` when no coded service is known (neither ``action.service`` nor
    a coded ``ServiceRequest.code``) or when the service was performed in the future.
    """
    request = service_request or {}
    # References copied from the ServiceRequest are relative to *its* server (P-4).
    base = server_base(reference_text(task.get("focus")))
    procedure: Resource = {
        "resourceType": "Procedure",
        "id": procedure_id,
        "meta": {"profile": [SDOHCC_PROCEDURE]},
        "basedOn": [copy.deepcopy(task.get("focus"))],
        "status": "completed",
        "code": _service_code(action.service, request),
        "subject": copy.deepcopy(task.get("for")),
        "performedDateTime": _performed(action, now),
        "performer": [{"actor": {"reference": performer_organization}}],
    }
    goals = [_absolute_goal(extension, base) for extension in _goal_extensions(request)]
    if goals:
        procedure["extension"] = goals
    categories = sdoh_codings(request)
    if categories:
        procedure["category"] = {"coding": copy.deepcopy(categories)}
    reasons = [absolute(reference, base) for reference in objs(request.get("reasonReference"))]
    if reasons:
        procedure["reasonReference"] = reasons
    if action.note:
        procedure["note"] = [
            {
                "authorReference": {"reference": performer_organization},
                "time": now,
                "text": action.note,
            }
        ]
    return procedure


def _service_code(service: CodingIn | None, request: Resource) -> dict[str, Any]:
    if service is not None:
        coding = {"system": service.system, "code": service.code}
        if service.display:
            coding["display"] = service.display
        return {"coding": [coding]}
    requested = obj(request.get("code"))
    if any(text(c.get("code")) for c in codings(requested)):
        return copy.deepcopy(requested)
    raise Unprocessable(
        "Say which service was delivered: the referral has no coded service to default to",
        expression=("service",),
    )


def _performed(action: CompleteAction, now: str) -> str:
    performed = action.performed
    if performed is None:
        return now
    current = parse_datetime(now)
    if current is not None:
        late = (
            performed > current + _CLOCK_SKEW
            if isinstance(performed, datetime)
            else performed > current.date()
        )
        if late:
            raise Unprocessable(
                "The service cannot have been performed in the future", expression=("performed",)
            )
    return performed.isoformat()


def _goal_extensions(request: Resource) -> list[dict[str, Any]]:
    return [e for e in objs(request.get("extension")) if e.get("url") == PERTAINS_TO_GOAL]


def _absolute_goal(extension: dict[str, Any], base: str | None) -> dict[str, Any]:
    copied = copy.deepcopy(extension)
    if isinstance(copied.get("valueReference"), dict):
        copied["valueReference"] = absolute(copied["valueReference"], base)
    return copied
