"""The search parameters Loopgate supports, per resource type (pure data).

Each parameter names the JSON paths it indexes; ``conformance.search_index`` extracts values
along them and the CapabilityStatement advertises exactly this table. Sets follow what the
Gravity CapabilityStatements ask of a server (reference/gravity.md Appendix A).
Spec: http://hl7.org/fhir/R4/searchparameter-registry.html
"""

from dataclasses import dataclass
from typing import Literal

ParamType = Literal["token", "reference", "date", "string", "uri", "id", "last-updated"]

_BASE = "http://hl7.org/fhir/SearchParameter/"
_SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SearchParameter/"


@dataclass(frozen=True)
class SearchParameter:
    code: str
    type: ParamType
    paths: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    """For references: the types a bare id may mean; empty means any type."""
    definition: str = ""


def _p(
    code: str,
    type_: ParamType,
    *paths: str,
    targets: tuple[str, ...] = (),
    definition: str | None = None,
    owner: str = "",
) -> SearchParameter:
    return SearchParameter(
        code=code,
        type=type_,
        paths=paths,
        targets=targets,
        definition=definition or f"{_BASE}{owner}-{code}",
    )


COMMON: tuple[SearchParameter, ...] = (
    SearchParameter("_id", "id", definition=f"{_BASE}Resource-id"),
    SearchParameter("_lastUpdated", "last-updated", definition=f"{_BASE}Resource-lastUpdated"),
    SearchParameter("_profile", "uri", ("meta.profile",), definition=f"{_BASE}Resource-profile"),
)


def _task() -> tuple[SearchParameter, ...]:
    t = "Task"
    return (
        _p("identifier", "token", "identifier", owner=t),
        _p("code", "token", "code", owner=t),
        _p("status", "token", "status", owner=t),
        _p("business-status", "token", "businessStatus", owner=t),
        _p("patient", "reference", "for", targets=("Patient",), owner=t),
        _p("subject", "reference", "for", owner=t),
        _p("requester", "reference", "requester", owner=t),
        _p("owner", "reference", "owner", owner=t),
        _p("focus", "reference", "focus", owner=t),
        _p(
            "output",
            "reference",
            "output.valueReference",
            definition=f"{_SDOHCC}Task-output-reference",
        ),
        _p("based-on", "reference", "basedOn", owner=t),
        _p("part-of", "reference", "partOf", targets=("Task",), owner=t),
        _p("authored-on", "date", "authoredOn", owner=t),
        _p("modified", "date", "lastModified", owner=t),
        _p("priority", "token", "priority", owner=t),
    )


def _service_request() -> tuple[SearchParameter, ...]:
    s = "ServiceRequest"
    return (
        _p("identifier", "token", "identifier", definition=f"{_BASE}clinical-identifier"),
        _p(
            "patient",
            "reference",
            "subject",
            targets=("Patient",),
            definition=f"{_BASE}clinical-patient",
        ),
        _p("subject", "reference", "subject", owner=s),
        _p("category", "token", "category", owner=s),
        _p("code", "token", "code", definition=f"{_BASE}clinical-code"),
        _p("intent", "token", "intent", owner=s),
        _p("status", "token", "status", owner=s),
        _p("priority", "token", "priority", owner=s),
        _p("requester", "reference", "requester", owner=s),
        _p("performer", "reference", "performer", owner=s),
        _p("based-on", "reference", "basedOn", owner=s),
        _p(
            "supporting-info",
            "reference",
            "supportingInfo",
            definition=f"{_SDOHCC}ServiceRequest-supporting-info",
        ),
        _p("authored", "date", "authoredOn", owner=s),
        _p("occurrence", "date", "occurrenceDateTime", "occurrencePeriod", owner=s),
    )


def _procedure() -> tuple[SearchParameter, ...]:
    p = "Procedure"
    return (
        _p("identifier", "token", "identifier", definition=f"{_BASE}clinical-identifier"),
        _p("based-on", "reference", "basedOn", owner=p),
        _p("category", "token", "category", owner=p),
        _p(
            "patient",
            "reference",
            "subject",
            targets=("Patient",),
            definition=f"{_BASE}clinical-patient",
        ),
        _p("subject", "reference", "subject", owner=p),
        _p("performer", "reference", "performer.actor", owner=p),
        _p("status", "token", "status", owner=p),
        _p("code", "token", "code", definition=f"{_BASE}clinical-code"),
        _p(
            "date",
            "date",
            "performedDateTime",
            "performedPeriod",
            definition=f"{_BASE}clinical-date",
        ),
    )


def _person(owner: str) -> tuple[SearchParameter, ...]:
    return (
        _p("identifier", "token", "identifier", owner=owner),
        _p("name", "string", "name", owner=owner),
        _p("family", "string", "name.family", definition=f"{_BASE}individual-family"),
        _p("given", "string", "name.given", definition=f"{_BASE}individual-given"),
        _p("gender", "token", "gender", definition=f"{_BASE}individual-gender"),
    )


def _patient_compartment(owner: str, path: str = "subject") -> tuple[SearchParameter, ...]:
    return (
        _p(
            "patient",
            "reference",
            path,
            targets=("Patient",),
            definition=f"{_BASE}clinical-patient",
        ),
        _p("subject", "reference", path, owner=owner),
    )


SEARCH_PARAMETERS: dict[str, tuple[SearchParameter, ...]] = {
    "Task": _task(),
    "ServiceRequest": _service_request(),
    "Procedure": _procedure(),
    "Patient": (
        *_person("Patient"),
        _p("birthdate", "date", "birthDate", definition=f"{_BASE}individual-birthdate"),
        _p("active", "token", "active", owner="Patient"),
    ),
    "RelatedPerson": (
        _p("identifier", "token", "identifier", owner="RelatedPerson"),
        _p("patient", "reference", "patient", targets=("Patient",), owner="RelatedPerson"),
        _p("name", "string", "name", owner="RelatedPerson"),
    ),
    "Practitioner": (
        *_person("Practitioner"),
        _p("active", "token", "active", owner="Practitioner"),
    ),
    "PractitionerRole": (
        _p("identifier", "token", "identifier", owner="PractitionerRole"),
        _p(
            "organization",
            "reference",
            "organization",
            targets=("Organization",),
            owner="PractitionerRole",
        ),
        _p(
            "practitioner",
            "reference",
            "practitioner",
            targets=("Practitioner",),
            owner="PractitionerRole",
        ),
        _p("role", "token", "code", owner="PractitionerRole"),
        _p("active", "token", "active", owner="PractitionerRole"),
    ),
    "Organization": (
        _p("identifier", "token", "identifier", owner="Organization"),
        _p("name", "string", "name", "alias", owner="Organization"),
        _p("type", "token", "type", owner="Organization"),
        _p("active", "token", "active", owner="Organization"),
        _p("partof", "reference", "partOf", targets=("Organization",), owner="Organization"),
    ),
    "HealthcareService": (
        _p("identifier", "token", "identifier", owner="HealthcareService"),
        _p(
            "organization",
            "reference",
            "providedBy",
            targets=("Organization",),
            owner="HealthcareService",
        ),
        _p("service-category", "token", "category", owner="HealthcareService"),
        _p("type", "token", "type", owner="HealthcareService"),
        _p("location", "reference", "location", targets=("Location",), owner="HealthcareService"),
        _p("active", "token", "active", owner="HealthcareService"),
        _p("name", "string", "name", owner="HealthcareService"),
        _p("program", "token", "program", owner="HealthcareService"),
    ),
    "Location": (
        _p("identifier", "token", "identifier", owner="Location"),
        _p("name", "string", "name", "alias", owner="Location"),
        _p(
            "organization",
            "reference",
            "managingOrganization",
            targets=("Organization",),
            owner="Location",
        ),
        _p("address-postalcode", "string", "address.postalCode", owner="Location"),
    ),
    "Consent": (
        _p(
            "patient",
            "reference",
            "patient",
            targets=("Patient",),
            definition=f"{_BASE}clinical-patient",
        ),
        _p("status", "token", "status", owner="Consent"),
        _p("category", "token", "category", owner="Consent"),
        _p("organization", "reference", "organization", targets=("Organization",), owner="Consent"),
        _p("source-reference", "reference", "sourceReference", owner="Consent"),
        _p("date", "date", "dateTime", definition=f"{_BASE}clinical-date"),
    ),
    "Condition": (
        *_patient_compartment("Condition"),
        _p("category", "token", "category", owner="Condition"),
        _p("code", "token", "code", definition=f"{_BASE}clinical-code"),
        _p("clinical-status", "token", "clinicalStatus", owner="Condition"),
        _p("verification-status", "token", "verificationStatus", owner="Condition"),
    ),
    "Goal": (
        *_patient_compartment("Goal"),
        _p("category", "token", "category", owner="Goal"),
        _p("lifecycle-status", "token", "lifecycleStatus", owner="Goal"),
        _p("achievement-status", "token", "achievementStatus", owner="Goal"),
        _p("target-date", "date", "target.dueDate", owner="Goal"),
    ),
    "Observation": (
        *_patient_compartment("Observation"),
        _p("category", "token", "category", owner="Observation"),
        _p("code", "token", "code", definition=f"{_BASE}clinical-code"),
        _p("status", "token", "status", owner="Observation"),
        _p(
            "date",
            "date",
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveInstant",
            definition=f"{_BASE}clinical-date",
        ),
        _p("derived-from", "reference", "derivedFrom", owner="Observation"),
        _p("focus", "reference", "focus", owner="Observation"),
    ),
    "QuestionnaireResponse": (
        *_patient_compartment("QuestionnaireResponse"),
        _p("status", "token", "status", owner="QuestionnaireResponse"),
        _p("authored", "date", "authored", owner="QuestionnaireResponse"),
        _p("author", "reference", "author", owner="QuestionnaireResponse"),
        _p("questionnaire", "uri", "questionnaire", owner="QuestionnaireResponse"),
    ),
    "DocumentReference": (
        *_patient_compartment("DocumentReference"),
        _p("status", "token", "status", owner="DocumentReference"),
        _p("category", "token", "category", owner="DocumentReference"),
        _p("type", "token", "type", definition=f"{_BASE}clinical-type"),
    ),
    "CareTeam": (
        *_patient_compartment("CareTeam"),
        _p("status", "token", "status", owner="CareTeam"),
        _p("participant", "reference", "participant.member", owner="CareTeam"),
    ),
    "Group": (
        _p("identifier", "token", "identifier", owner="Group"),
        _p("member", "reference", "member.entity", owner="Group"),
        _p("managing-entity", "reference", "managingEntity", owner="Group"),
        _p("code", "token", "code", owner="Group"),
    ),
    "Provenance": (
        _p("target", "reference", "target", owner="Provenance"),
        _p("agent", "reference", "agent.who", owner="Provenance"),
        _p("recorded", "date", "recorded", owner="Provenance"),
        _p("patient", "reference", "target", targets=("Patient",), owner="Provenance"),
    ),
    "Subscription": (
        _p("status", "token", "status", owner="Subscription"),
        _p("criteria", "string", "criteria", owner="Subscription"),
        _p("type", "token", "channel.type", owner="Subscription"),
        _p("url", "uri", "channel.endpoint", owner="Subscription"),
    ),
    "AuditEvent": (
        _p("date", "date", "recorded", owner="AuditEvent"),
        _p("type", "token", "type", owner="AuditEvent"),
        _p("subtype", "token", "subtype", owner="AuditEvent"),
        _p("outcome", "token", "outcome", owner="AuditEvent"),
        _p("agent", "reference", "agent.who", owner="AuditEvent"),
        _p("entity", "reference", "entity.what", owner="AuditEvent"),
    ),
}


def parameters_for(resource_type: str) -> dict[str, SearchParameter]:
    """Every parameter a search on ``resource_type`` accepts, common ones included."""
    return {p.code: p for p in (*COMMON, *SEARCH_PARAMETERS.get(resource_type, ()))}


_INDEXED: dict[str, tuple[SearchParameter, ...]] = {
    rtype: tuple(p for p in (*COMMON, *params) if p.paths)
    for rtype, params in SEARCH_PARAMETERS.items()
}


def indexed_parameters(resource_type: str) -> tuple[SearchParameter, ...]:
    """Parameters whose values are extracted into index rows on every write."""
    return _INDEXED.get(resource_type, tuple(p for p in COMMON if p.paths))
