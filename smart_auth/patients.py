"""The port through which smart_auth finds patients: gateway implements it over its FHIR store."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PatientChoice:
    reference: str
    """``Patient/<id>``: the value the patient picker submits."""
    display: str
    """e.g. ``Rivera, Denise (1986-03-14)``; shown only to a signed-in user on the picker page."""


class PatientDirectory(Protocol):
    def find_patients(
        self, *, organization: str | None, text: str | None, limit: int
    ) -> list[PatientChoice]:
        """Patients the organization's users may pick, optionally matching ``text``."""
        ...

    def patient_exists(self, reference: str) -> bool:
        """True when ``Patient/<id>`` exists (and is not deleted)."""
        ...
