"""The patient directory ``smart_auth`` asks for its patient picker, over the FHIR store.

A user picks among the patients their organization may see (``gateway.access.visibility``).
"""

import orjson

from conformance.access import AccessContext
from gateway.fhir import FhirService
from smart_auth import PatientChoice


class StorePatientDirectory:
    """``smart_auth.PatientDirectory`` backed by ``FhirService``."""

    def __init__(self, service: FhirService) -> None:
        self.service = service

    def find_patients(
        self, *, organization: str | None, text: str | None, limit: int
    ) -> list[PatientChoice]:
        actor = AccessContext(organization=organization, client_id="patient-picker")
        pairs = [("_count", str(limit)), ("_sort", "_id")]
        if text:
            pairs.append(("name", text))
        result = self.service.search(actor, self.service.parse_search("Patient", pairs))
        return [
            PatientChoice(f"Patient/{match.id}", _display(orjson.loads(match.body or "{}")))
            for match in result.matches
        ]

    def patient_exists(self, reference: str) -> bool:
        patient_id = reference.removeprefix("Patient/")
        actor = AccessContext(organization=None, client_id="patient-picker")
        pairs = [("_id", patient_id), ("_summary", "count")]
        result = self.service.search(actor, self.service.parse_search("Patient", pairs))
        return bool(result.total)


def _display(patient: dict[str, object]) -> str:
    """``Rivera, Denise (1986-03-14)``, or the id when the record has no name."""
    names = patient.get("name")
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
    given = " ".join(str(g) for g in name.get("given", []) if isinstance(g, str))
    family = name.get("family") or ""
    label = ", ".join(part for part in (str(family), given) if part) or str(patient.get("id"))
    birth = patient.get("birthDate")
    return f"{label} ({birth})" if birth else label
