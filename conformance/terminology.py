"""Code systems and the required value sets Loopgate checks itself (pure data).

fhir.resources does not enforce required bindings (reference/perf.md §4.2), so every code the
Gravity profiles bind as *required* and that we can check without a terminology server is here.
"""

SDOHCC_TEMPORARY_CODES = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)
TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"

# http://hl7.org/fhir/us/sdoh-clinicalcare/ValueSet/SDOHCC-ValueSetSDOHCategory (gravity.md §4.2)
SDOH_CATEGORIES = frozenset(
    {
        "sdoh-category-unspecified",
        "food-insecurity",
        "housing-instability",
        "homelessness",
        "inadequate-housing",
        "transportation-insecurity",
        "financial-insecurity",
        "material-hardship",
        "educational-attainment",
        "employment-status",
        "veteran-status",
        "stress",
        "social-connection",
        "intimate-partner-violence",
        "elder-abuse",
        "personal-health-literacy",
        "health-insurance-coverage-status",
        "medical-cost-burden",
        "digital-literacy",
        "digital-access",
        "utility-insecurity",
        "incarceration-status",
        "language-access",
        "protective-factor",
    }
)

RESULTING_ACTIVITY = "resulting-activity"
ADDITIONAL_CONTENT = "additional-content"
CONTACTING_SUBJECT_PROHIBITED = "contacting-subject-prohibited"

# http://hl7.org/fhir/R4/valueset-request-status.html
REQUEST_STATUS = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
# http://hl7.org/fhir/R4/valueset-request-intent.html
REQUEST_INTENT = frozenset(
    {
        "proposal",
        "plan",
        "directive",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    }
)
# http://hl7.org/fhir/R4/valueset-request-priority.html
REQUEST_PRIORITY = frozenset({"routine", "urgent", "asap", "stat"})
# http://hl7.org/fhir/R4/valueset-event-status.html
EVENT_STATUS = frozenset(
    {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    }
)
# http://hl7.org/fhir/R4/valueset-consent-state-codes.html
CONSENT_STATE = frozenset(
    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
)
