"""Gravity-shaped FHIR R4 resources the benchmark sends (pure, no product imports).

Shapes follow gateway/demo.py and tests/builders.py: an SDOHCC ServiceRequest and
TaskForReferralManagement, an SDOHCC Consent, an SDOH Condition, a US Core-style Patient and an
SDOH screening Observation. Everything is deterministic in its arguments, so the load generator
can rebuild the exact body of a resource the seeder stored (status updates rely on that).
"""

from typing import Any

HOSPITAL = "Organization/bench-hospital"
CBO_INBOX = "Organization/bench-food-bank"
"""The CBO whose inbox the search workload polls (owner of half the 100k seeded Tasks)."""
CBO_OTHER = "Organization/bench-housing"
"""Owner of the other half of the seeded Tasks."""
CBO_WORK = "Organization/bench-transport"
"""Owner of the referrals created by the benchmark and of the status-update Tasks."""
CLINICIAN_ROLE = "PractitionerRole/prr-bench-clinician"
ORGANIZATIONS = (HOSPITAL, CBO_INBOX, CBO_OTHER, CBO_WORK)
"""Every organization a request acts for (each gets its own credentials)."""

TEMP = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
MRN = "http://bench-hospital.example.org/identifiers/mrn"
TASK_PROFILE = f"{SDOHCC}SDOHCC-TaskForReferralManagement"


def organization(org_id: str, name: str, kind: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": org_id,
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": kind,
                    }
                ]
            }
        ],
        "name": name,
    }


def network() -> list[dict[str, Any]]:
    """The organizations and clinician every workload relies on (written with PUT)."""
    return [
        organization("bench-hospital", "Bench General Hospital", "prov"),
        organization("bench-food-bank", "Bench Community Food Bank", "cg"),
        organization("bench-housing", "Bench Housing Services", "cg"),
        organization("bench-transport", "Bench Ride Share for Care", "cg"),
        {
            "resourceType": "Practitioner",
            "id": "bench-clinician",
            "active": True,
            "name": [{"family": "Okafor", "given": ["Amara"], "prefix": ["Dr."]}],
        },
        {
            "resourceType": "PractitionerRole",
            "id": "prr-bench-clinician",
            "active": True,
            "practitioner": {"reference": "Practitioner/bench-clinician"},
            "organization": {"reference": HOSPITAL},
        },
        {
            "resourceType": "HealthcareService",
            "id": "bench-food-pantry",
            "active": True,
            "providedBy": {"reference": CBO_INBOX},
            "category": [{"coding": [{"system": TEMP, "code": "food-insecurity"}]}],
            "name": "Food pantry enrollment",
        },
    ]


_FAMILIES = ("Rivera", "Okonkwo", "Nguyen", "Schmidt", "Haddad", "Kowalski", "Tanaka", "Silva")
_GIVEN = ("Denise", "Samuel", "Linh", "Greta", "Omar", "Marta", "Kenji", "Ana")


def patient(patient_id: str | None, mrn: str, n: int) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient"}
    if patient_id is not None:
        resource["id"] = patient_id
    resource.update(
        {
            "active": True,
            "identifier": [
                {
                    "use": "usual",
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "MR",
                            }
                        ]
                    },
                    "system": MRN,
                    "value": mrn,
                }
            ],
            "name": [{"family": _FAMILIES[n % 8], "given": [_GIVEN[(n // 8) % 8], "M."]}],
            "telecom": [{"system": "phone", "value": f"555-01{n % 100:02d}", "use": "mobile"}],
            "gender": "female" if n % 2 else "male",
            "birthDate": f"{1940 + n % 60}-{1 + n % 12:02d}-{1 + n % 28:02d}",
            "address": [
                {
                    "line": [f"{100 + n % 900} Main St"],
                    "city": "Springfield",
                    "state": "IL",
                    "postalCode": "62701",
                }
            ],
        }
    )
    return resource


def service_request(sr_id: str | None, patient_ref: str, performer: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "ServiceRequest"}
    if sr_id is not None:
        resource["id"] = sr_id
    resource.update(
        {
            "meta": {"profile": [f"{SDOHCC}SDOHCC-ServiceRequest"]},
            "status": "active",
            "intent": "order",
            "category": [
                {
                    "coding": [
                        {"system": TEMP, "code": "food-insecurity", "display": "Food Insecurity"}
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": "467771000124109",
                        "display": "Assistance with application for food pantry program",
                    }
                ]
            },
            "subject": {"reference": patient_ref},
            "authoredOn": "2026-11-20T14:05:00Z",
            "requester": {"reference": CLINICIAN_ROLE},
            "performer": [{"reference": performer}],
        }
    )
    return resource


def condition(patient_ref: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
                        "code": "sdoh",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": SNOMED, "code": "733423003", "display": "Food insecurity"}]},
        "subject": {"reference": patient_ref},
        "onsetDateTime": "2026-11-01",
    }


def consent(patient_ref: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "meta": {"profile": [f"{SDOHCC}SDOHCC-Consent"]},
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
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}
                ]
            }
        ],
        "patient": {"reference": patient_ref},
        "dateTime": "2026-11-20T14:00:00Z",
        "organization": [{"reference": HOSPITAL}],
        "sourceAttachment": {"title": "Signed consent to share with community partners"},
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentpolicycodes",
                    "code": "hipaa-auth",
                }
            ]
        },
    }


def task(
    task_id: str | None,
    *,
    sr_ref: str,
    patient_ref: str,
    owner: str,
    status: str = "requested",
    authored_on: str = "2026-11-20T14:06:00Z",
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Task"}
    if task_id is not None:
        resource["id"] = task_id
    resource.update(
        {
            "meta": {"profile": [TASK_PROFILE]},
            "status": status,
            "intent": "order",
            "priority": "routine",
            "code": {
                "coding": [
                    {"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}
                ]
            },
            "focus": {"reference": sr_ref},
            "for": {"reference": patient_ref},
            "authoredOn": authored_on,
            "requester": {"reference": CLINICIAN_ROLE},
            "owner": {"reference": owner},
        }
    )
    return resource


def observation(obs_id: str | None, patient_ref: str, value: int) -> dict[str, Any]:
    """An SDOH screening response (Hunger Vital Sign question), value as a count of answers."""
    resource: dict[str, Any] = {"resourceType": "Observation"}
    if obs_id is not None:
        resource["id"] = obs_id
    resource.update(
        {
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "social-history",
                        }
                    ]
                },
                {"coding": [{"system": TEMP, "code": "food-insecurity"}]},
            ],
            "code": {
                "coding": [
                    {
                        "system": LOINC,
                        "code": "88124-3",
                        "display": "Food insecurity risk [HVS]",
                    }
                ]
            },
            "subject": {"reference": patient_ref},
            "effectiveDateTime": "2026-11-19T10:00:00Z",
            "valueQuantity": {"value": value, "unit": "score"},
        }
    )
    return resource


# urn:uuid fullUrls only need to be unique inside one Bundle, so every referral reuses these.
_URN = {
    "Patient": "urn:uuid:6f1c3b1e-0d5a-4c55-9a3e-1d2b3c4d5e01",
    "ServiceRequest": "urn:uuid:6f1c3b1e-0d5a-4c55-9a3e-1d2b3c4d5e02",
    "Condition": "urn:uuid:6f1c3b1e-0d5a-4c55-9a3e-1d2b3c4d5e03",
    "Consent": "urn:uuid:6f1c3b1e-0d5a-4c55-9a3e-1d2b3c4d5e04",
    "Task": "urn:uuid:6f1c3b1e-0d5a-4c55-9a3e-1d2b3c4d5e05",
}


def referral_bundle(mrn: str, n: int, *, owner: str = CBO_WORK) -> dict[str, Any]:
    """A Gravity Direct referral: Patient (ifNoneExist on its MRN), ServiceRequest, Condition,
    Consent and a requested Task, linked by urn:uuid fullUrls, in one transaction."""
    pat = _URN["Patient"]
    sr = service_request(None, pat, owner)
    sr["reasonReference"] = [{"reference": _URN["Condition"]}]
    sr["supportingInfo"] = [{"reference": _URN["Consent"]}]
    entries = [
        ("Patient", patient(None, mrn, n), f"identifier={MRN}|{mrn}"),
        ("ServiceRequest", sr, None),
        ("Condition", condition(pat), None),
        ("Consent", consent(pat), None),
        ("Task", task(None, sr_ref=_URN["ServiceRequest"], patient_ref=pat, owner=owner), None),
    ]
    bundle_entries = []
    for resource_type, resource, if_none_exist in entries:
        request: dict[str, Any] = {"method": "POST", "url": resource_type}
        if if_none_exist:
            request["ifNoneExist"] = if_none_exist
        bundle_entries.append(
            {"fullUrl": _URN[resource_type], "resource": resource, "request": request}
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": bundle_entries}


def put_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction of PUTs (used to seed pools of resources with predictable ids)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


# -- pools with predictable ids, seeded through the API before the timed runs ---------------

POOL_PATIENTS = 500
POOL_OBSERVATIONS = 1000


def pool_patient_id(i: int) -> str:
    return f"pat-{i % POOL_PATIENTS}"


def pool_mrn(i: int) -> str:
    return f"BENCH-P{i % POOL_PATIENTS}"


def pool_sr_id(i: int) -> str:
    return f"sr-{i % POOL_PATIENTS}"


def pool_observation_id(i: int) -> str:
    return f"obs-{i % POOL_OBSERVATIONS}"


def pool_patient(i: int) -> dict[str, Any]:
    return patient(pool_patient_id(i), pool_mrn(i), i)


def pool_service_request(i: int) -> dict[str, Any]:
    return service_request(pool_sr_id(i), f"Patient/{pool_patient_id(i)}", CBO_WORK)


def pool_observation(i: int, value: int = 0) -> dict[str, Any]:
    return observation(pool_observation_id(i), f"Patient/{pool_patient_id(i)}", value)


def status_task(i: int, status: str = "requested") -> dict[str, Any]:
    """The i-th Task the status-update workload moves requested → accepted (owner CBO_WORK)."""
    return task(
        f"st-{i}",
        sr_ref=f"ServiceRequest/{pool_sr_id(i)}",
        patient_ref=f"Patient/{pool_patient_id(i)}",
        owner=CBO_WORK,
        status=status,
    )
