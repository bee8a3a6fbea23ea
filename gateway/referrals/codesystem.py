"""Publish Loopgate's referral-reason CodeSystem as a FHIR resource, so hospital systems can
read what the ``statusReason`` and ``businessStatus`` codes of the JSON API mean.

Served at ``/fhir/CodeSystem/loopgate-referral-reason``; written at start, a new version only
when the codes changed (http://hl7.org/fhir/R4/codesystem.html).
"""

from conformance.access import SYSTEM
from fhir_mappings import reason_codesystem
from gateway.fhir import FhirService


def publish_reason_codesystem(service: FhirService) -> None:
    codesystem = reason_codesystem()
    service.update(SYSTEM, "CodeSystem", str(codesystem["id"]), codesystem)
