"""Who referred the client and how to reach them, from Task.requester and what it names.

``Task.requester`` is an SDOHCC PractitionerRole or a US Core Organization (reference/gravity.md
§3.1, P-5, P-20); names fall back to the references' displays when a resource was not fetched.
"""

from conformance.references import reference_type
from fhir_mappings._fhir_json import Resource, concept_text, obj, objs, reference_text, text
from fhir_mappings.client_details import person_name
from fhir_mappings.view_models import ContactPointView, ReferrerView


def referrer_view_from_fhir(
    task: Resource,
    *,
    role: Resource | None,
    practitioner: Resource | None,
    organization: Resource | None,
) -> ReferrerView:
    requester = obj(task.get("requester"))
    reference = reference_text(requester)
    is_organization = reference_type(requester) == "Organization"
    role = role or {}
    clinician = person_name((practitioner or {}).get("name"))
    return ReferrerView(
        reference=reference,
        display=text(requester.get("display")),
        organization=text((organization or {}).get("name"))
        or _display(role.get("organization"))
        or (text(requester.get("display")) if is_organization else None),
        clinician=clinician.text
        if clinician
        else text(obj(role.get("practitioner")).get("display")),
        role=next((concept_text(c) for c in objs(role.get("code")) if concept_text(c)), None)
        or next((concept_text(c) for c in objs(role.get("specialty")) if concept_text(c)), None),
        contact=_contacts(role, practitioner or {}, organization or {}),
    )


def _display(reference: object) -> str | None:
    return text(obj(reference).get("display"))


def _contacts(*holders: Resource) -> list[ContactPointView]:
    """Telecoms of the role, clinician and organization in that order, without repeats."""
    seen: set[tuple[str | None, str]] = set()
    contacts = []
    for holder in holders:
        for point in objs(holder.get("telecom")):
            value = text(point.get("value"))
            key = (text(point.get("system")), value or "")
            if value is None or point.get("use") == "old" or key in seen:
                continue
            seen.add(key)
            contacts.append(
                ContactPointView(system=key[0], value=value, use=text(point.get("use")))
            )
    return contacts
