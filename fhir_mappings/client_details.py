"""The client (Patient) as a CBO may see them: the minimum necessary, or nothing at all.

Minimum necessary (reference/gravity.md §7, §10 rules 3–4, AC-15): no phone, e-mail or address
when the ServiceRequest carries ``contacting-subject-prohibited``; no client detail at all while
the partner requires consent and no active Consent covers the disclosure.
"""

from typing import Any

from fhir_mappings._fhir_json import Resource, codings, concept_text, obj, objs, text
from fhir_mappings.view_models import AddressView, ClientView, CodingView, PersonNameView

_RETIRED_USES = frozenset({"old"})


def client_view_from_fhir(
    patient: Resource | None, *, withheld: bool, contact_prohibited: bool
) -> ClientView:
    if withheld:
        return ClientView(
            withheld=True, withheld_reason="consent-required", contact_prohibited=contact_prohibited
        )
    found = patient or {}
    view = ClientView(
        withheld=False,
        contact_prohibited=contact_prohibited,
        name=_name(found),
        birth_date=text(found.get("birthDate")),
        preferred_language=_language(found),
    )
    if contact_prohibited:
        return view
    return view.model_copy(
        update={
            "phone": _telecom(found, ("phone", "sms")),
            "email": _telecom(found, ("email",)),
            "address": _address(found),
        }
    )


def person_name(names: Any) -> PersonNameView | None:
    """The name to show from a list of HumanNames: usual or official first, never an old one."""
    current = [n for n in objs(names) if n.get("use") not in ("old", "maiden")]
    chosen = next((n for n in current if n.get("use") in ("usual", "official")), None)
    chosen = chosen or (current[0] if current else None)
    if chosen is None:
        return None
    given = [g for g in chosen.get("given") or [] if isinstance(g, str) and g]
    family = text(chosen.get("family"))
    full = text(chosen.get("text")) or " ".join([*given, *([family] if family else [])])
    return PersonNameView(text=full, family=family, given=given) if full else None


def _name(patient: Resource) -> PersonNameView | None:
    return person_name(patient.get("name"))


def _telecom(patient: Resource, systems: tuple[str, ...]) -> str | None:
    points = [
        p
        for p in objs(patient.get("telecom"))
        if p.get("system") in systems and p.get("use") not in _RETIRED_USES and text(p.get("value"))
    ]
    points.sort(key=lambda p: (systems.index(p["system"]), _rank(p)))
    return str(points[0]["value"]) if points else None


def _rank(point: Resource) -> int:
    rank = point.get("rank")
    return rank if isinstance(rank, int) else 1_000_000


def _address(patient: Resource) -> AddressView | None:
    addresses = [a for a in objs(patient.get("address")) if a.get("use") not in _RETIRED_USES]
    addresses.sort(key=lambda a: a.get("use") != "home")
    if not addresses:
        return None
    chosen = addresses[0]
    return AddressView(
        lines=[line for line in chosen.get("line") or [] if isinstance(line, str) and line],
        city=text(chosen.get("city")),
        district=text(chosen.get("district")),
        state=text(chosen.get("state")),
        postal_code=text(chosen.get("postalCode")),
        country=text(chosen.get("country")),
        text=text(chosen.get("text")),
    )


def _language(patient: Resource) -> CodingView | None:
    entries = objs(patient.get("communication"))
    entries.sort(key=lambda c: c.get("preferred") is not True)
    if not entries:
        return None
    language = obj(entries[0].get("language"))
    coding = next(codings(language), {})
    code, display = text(coding.get("code")), text(coding.get("display"))
    display = display or concept_text(language)
    if code is None and display is None:
        return None
    return CodingView(system=text(coding.get("system")), code=code, display=display)
