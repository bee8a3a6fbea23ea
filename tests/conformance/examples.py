"""The shared example FHIR resources (``../shared/examples/fhir``), loaded fresh for each caller."""

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "shared" / "examples" / "fhir"

GATEWAY_BASE = "https://gateway.socialcare.example.org/fhir"
"""The FHIR base the examples call Loopgate's own (ServiceRequest.performer)."""
EHR_BASE = "https://ehr.mercyhospital.example.org/fhir"
"""The EHR's FHIR base: references under it are external to Loopgate."""

TEMP_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"


@cache
def _read(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((EXAMPLES_DIR / f"{name}.json").read_text("utf-8"))
    return result


def load_example(name: str) -> dict[str, Any]:
    """A private deep copy of ``<name>.json``, safe to mutate."""
    return copy.deepcopy(_read(name))


def task_requested() -> dict[str, Any]:
    return load_example("Task-task-ref-5001-requested")


def task_completed() -> dict[str, Any]:
    return load_example("Task-task-ref-5001-completed")


def service_request() -> dict[str, Any]:
    return load_example("ServiceRequest-sr-food-2001")


def procedure() -> dict[str, Any]:
    return load_example("Procedure-proc-6001")


def patient() -> dict[str, Any]:
    return load_example("Patient-pat-1001")


def consent() -> dict[str, Any]:
    """An SDOHCC Consent for the example patient (there is no shared example of one)."""
    return {
        "resourceType": "Consent",
        "id": "consent-1001",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "IDSCL",
                        "display": "information disclosure",
                    }
                ]
            }
        ],
        "patient": {"reference": "Patient/pat-1001"},
        "dateTime": "2025-03-10T14:00:00-05:00",
        "organization": [{"reference": "Organization/mercy-hospital"}],
        "sourceReference": {"reference": "DocumentReference/consent-form-1001"},
        "policy": [{"uri": "http://mercyhospital.example.org/policies/sdoh-disclosure"}],
    }


def resulting_activity(reference: str) -> dict[str, Any]:
    """A ``Task.output`` naming a Procedure as the resulting activity."""
    return {
        "type": {"coding": [{"system": TEMP_CODES, "code": "resulting-activity"}]},
        "valueReference": {"reference": reference},
    }
