"""Which resources belong to a patient, for ``patient/`` SMART scopes (pure data).

Adapted from the R4 Patient CompartmentDefinition
(http://hl7.org/fhir/R4/compartmentdefinition-patient.html), with Task added through
``Task.for`` as Loopgate's SMART decisions require. Directory resources hold no patient data and
are readable with any patient scope.
"""

PATIENT_COMPARTMENT: dict[str, str] = {
    "Task": "patient",
    "ServiceRequest": "patient",
    "Procedure": "patient",
    "Consent": "patient",
    "Condition": "patient",
    "Goal": "patient",
    "Observation": "patient",
    "QuestionnaireResponse": "patient",
    "DocumentReference": "patient",
    "CareTeam": "patient",
    "RelatedPerson": "patient",
    "Provenance": "patient",
}
"""The search parameter that links each type to its patient."""

DIRECTORY_TYPES = frozenset(
    {
        "Organization",
        "OrganizationAffiliation",
        "Practitioner",
        "PractitionerRole",
        "HealthcareService",
        "Location",
        "Endpoint",
    }
)
"""Who-and-where records: visible to every caller, in or out of a patient compartment."""

DEFINITION_TYPES = frozenset(
    {
        "CodeSystem",
        "ValueSet",
        "ConceptMap",
        "NamingSystem",
        "StructureDefinition",
    }
)
"""Terminology and definitions (what codes mean): no one's data, so readable by every caller.
Loopgate publishes its referral-reason CodeSystem this way."""

SHARED_TYPES = DIRECTORY_TYPES | DEFINITION_TYPES
"""Types every caller may read, in or out of a patient compartment."""
