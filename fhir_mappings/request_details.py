"""What was asked for, read from the SDOHCC ServiceRequest: need, service, reasons, do-not-contact.

http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest
(reference/gravity.md §4.1–4.2).
"""

from collections.abc import Sequence
from typing import Any

from conformance.terminology import (
    CONTACTING_SUBJECT_PROHIBITED,
    SDOH_CATEGORIES,
    SDOHCC_TEMPORARY_CODES,
)
from fhir_mappings._fhir_json import (
    Resource,
    codings,
    concept_text,
    local_key,
    obj,
    objs,
    reference_text,
    same_resource,
    text,
)
from fhir_mappings.view_models import ClinicalReason, CodingView, ConceptView, NeedView


def sdoh_codings(service_request: Resource | None) -> list[dict[str, Any]]:
    """The SR's SDOHCC category codings (temporary code system, SDOH category value set)."""
    return [
        coding
        for concept in objs((service_request or {}).get("category"))
        for coding in codings(concept)
        if coding.get("system") == SDOHCC_TEMPORARY_CODES and coding.get("code") in SDOH_CATEGORIES
    ]


def need_view_from_fhir(service_request: Resource | None) -> NeedView | None:
    """The first SDOH category of the referral (the SDOHCC category slice)."""
    found = sdoh_codings(service_request)
    if not found:
        return None
    return NeedView(code=str(found[0]["code"]), display=text(found[0].get("display")))


def concept_view_from_fhir(concept: Any) -> ConceptView | None:
    """A CodeableConcept as its first coded coding plus the text to show."""
    first = next((c for c in codings(concept) if text(c.get("code"))), {})
    shown = concept_text(concept)
    if not first and shown is None:
        return None
    return ConceptView(
        system=text(first.get("system")),
        code=text(first.get("code")),
        display=text(first.get("display")),
        text=shown,
    )


def contact_prohibited(service_request: Resource | None) -> bool:
    """``SR.orderDetail`` carries temp CS#contacting-subject-prohibited (gravity.md §4.1)."""
    return any(
        coding.get("system") == SDOHCC_TEMPORARY_CODES
        and coding.get("code") == CONTACTING_SUBJECT_PROHIBITED
        for detail in objs((service_request or {}).get("orderDetail"))
        for coding in codings(detail)
    )


def reasons_from_fhir(
    service_request: Resource | None, resources: Sequence[Resource]
) -> list[ClinicalReason]:
    """One entry per ``SR.reasonReference`` (its resource when fetched) and ``SR.reasonCode``."""
    request = service_request or {}
    pending = list(resources)
    reasons = []
    for reference in objs(request.get("reasonReference")):
        value = reference_text(reference)
        found = next((r for r in pending if same_resource(value, local_key(r))), None)
        if found is not None:
            pending.remove(found)
            reasons.append(_reason_from_resource(found))
        elif text(reference.get("display")):
            reasons.append(ClinicalReason(text=text(reference.get("display"))))
    reasons.extend(_reason_from_resource(resource) for resource in pending)
    reasons.extend(_reason_from_concept(concept) for concept in objs(request.get("reasonCode")))
    return reasons


def _reason_from_resource(resource: Resource) -> ClinicalReason:
    reason = _reason_from_concept(resource.get("code"))
    if resource.get("resourceType") != "Observation":
        return reason
    return reason.model_copy(update={"value": _observation_value(resource)})


def _reason_from_concept(concept: Any) -> ClinicalReason:
    return ClinicalReason(
        text=concept_text(concept),
        codes=[
            CodingView(
                system=text(c.get("system")),
                code=text(c.get("code")),
                display=text(c.get("display")),
            )
            for c in codings(concept)
        ],
    )


def _observation_value(observation: Resource) -> str | None:
    if "valueCodeableConcept" in observation:
        return concept_text(observation["valueCodeableConcept"])
    quantity = obj(observation.get("valueQuantity"))
    if "value" in quantity:
        unit = text(quantity.get("unit")) or text(quantity.get("code"))
        return f"{quantity['value']} {unit}" if unit else str(quantity["value"])
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        value = observation.get(key)
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (str, int)):
            return str(value)
    return None
