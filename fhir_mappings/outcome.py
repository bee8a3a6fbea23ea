"""What came of a referral: the outcome code in Task.businessStatus and the services delivered.

Delivered services are ``Task.output`` items of type temp CS#resulting-activity, either a
Reference to an SDOHCC Procedure or a procedure code (reference/gravity.md §3.1, P-19).
"""

from collections.abc import Sequence

from conformance.terminology import RESULTING_ACTIVITY, SDOHCC_TEMPORARY_CODES
from fhir_mappings._fhir_json import (
    Resource,
    coding_in,
    codings,
    concept_text,
    local_key,
    obj,
    objs,
    reference_text,
    same_resource,
    text,
)
from fhir_mappings.reasons import CODES_BY_ACTION, REASON_SYSTEM, display_of
from fhir_mappings.request_details import concept_view_from_fhir
from fhir_mappings.view_models import ActivityView, ConceptView, OutcomeView


def outcome_view_from_fhir(task: Resource, procedures: Sequence[Resource]) -> OutcomeView | None:
    """The outcome of a completed Task, or of any Task that reports delivered services."""
    activities = [
        _activity(item, procedures) for item in objs(task.get("output")) if _is_resulting(item)
    ]
    completed = task.get("status") == "completed"
    if not completed and not activities:
        return None
    coding = coding_in(task.get("businessStatus"), REASON_SYSTEM)
    code = coding["code"] if coding and coding["code"] in CODES_BY_ACTION["complete"] else None
    display = display_of(code) if code else None
    if display is None and completed:
        display = concept_text(task.get("businessStatus"))
    return OutcomeView(code=code, display=display, activities=activities)


def _is_resulting(item: Resource) -> bool:
    return any(
        c.get("system") == SDOHCC_TEMPORARY_CODES and c.get("code") == RESULTING_ACTIVITY
        for c in codings(item.get("type"))
    )


def _activity(item: Resource, procedures: Sequence[Resource]) -> ActivityView:
    if "valueCodeableConcept" in item:
        return ActivityView(code=concept_view_from_fhir(item["valueCodeableConcept"]))
    reference = obj(item.get("valueReference"))
    value = reference_text(reference)
    procedure = next((p for p in procedures if same_resource(value, local_key(p))), None)
    if procedure is None:
        label = text(reference.get("display"))
        return ActivityView(reference=value, code=ConceptView(text=label) if label else None)
    return ActivityView(
        reference=value,
        status=text(procedure.get("status")),
        code=concept_view_from_fhir(procedure.get("code")),
        performed=_performed(procedure),
    )


def _performed(procedure: Resource) -> str | None:
    period = obj(procedure.get("performedPeriod"))
    return (
        text(procedure.get("performedDateTime"))
        or text(period.get("end"))
        or text(period.get("start"))
        or text(procedure.get("performedString"))
    )
