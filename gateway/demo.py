"""``loopgate demo``: provision a sandbox network and print the referral loop as commands.

The sandbox is a hospital with a clinician, two CBOs with their services and staff, two
patients, and one SMART Backend Services client per organization, whose private keys are kept
in ``LOOPGATE_DEMO_DIR``. Each printed step fetches a fresh token with the example script
(``examples/backend_services.py``) and makes one FHIR call with curl. Each run mints a fresh
referral id, so the loop can be walked again and again: the hospital refers, the CBO accepts,
starts, records what it did and completes, and every forbidden move is shown being refused.
Then a second referral runs through the JSON API, as a CBO without a FHIR server would run
it with nothing but curl and its API key (kept in ``LOOPGATE_DEMO_DIR`` too). Around both, the
hospital subscribes to its referrals' changes first (``examples/notification_receiver.py``
shows the notifications) and replays every event it was sent last.
"""

import copy
import json
import shlex
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gateway.partners.api_keys import new_api_key
from gateway.partners.policy import PartnerSpec, PolicySpec
from gateway.provisioning import ProvisioningFile, provision_database
from gateway.settings import Settings
from smart_auth import generate_client_key, public_jwk

HOSPITAL = "Organization/mercy-hospital"
FOOD_BANK = "Organization/eastside-food-bank"
HOUSING = "Organization/northside-housing"
TEMP = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
SNOMED = "http://snomed.info/sct"


CLIENTS = {
    HOSPITAL: "mercy-hospital-ehr",
    FOOD_BANK: "eastside-food-bank-system",
    HOUSING: "northside-housing-system",
}
"""The Backend Services client each organization acts through."""
DEMO_PASSWORD = "loopgate-demo"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE_SCRIPT = EXAMPLES / "backend_services.py"
RECEIVER_SCRIPT = EXAMPLES / "notification_receiver.py"
RECEIVER_URL = "http://127.0.0.1:9099/notifications"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
GRAVITY_TASK_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"


@dataclass
class Step:
    title: str
    method: str
    path: str
    organization: str
    body: dict[str, Any] | None = None
    expect: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    door: str = "fhir"
    """``fhir`` (a SMART token from the example script) or ``json`` (the CBO's API key)."""


def sandbox() -> list[dict[str, Any]]:
    """The resources every demo run relies on (written idempotently)."""

    def org(org_id: str, name: str, kind: str) -> dict[str, Any]:
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

    def service(service_id: str, org_ref: str, name: str, category: str) -> dict[str, Any]:
        return {
            "resourceType": "HealthcareService",
            "id": service_id,
            "active": True,
            "providedBy": {"reference": org_ref},
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
                            "code": "sdoh",
                        },
                        {"system": TEMP, "code": category},
                    ]
                }
            ],
            "name": name,
        }

    return [
        org("mercy-hospital", "Mercy Hospital", "prov"),
        org("eastside-food-bank", "Eastside Community Food Bank", "cg"),
        org("northside-housing", "Northside Housing Services", "cg"),
        service("eastside-food-pantry", FOOD_BANK, "Food pantry enrollment", "food-insecurity"),
        service(
            "northside-rental-aid", HOUSING, "Emergency rental assistance", "housing-instability"
        ),
        {
            "resourceType": "Practitioner",
            "id": "dr-okafor",
            "active": True,
            "name": [{"family": "Okafor", "given": ["Amara"], "prefix": ["Dr."]}],
        },
        {
            "resourceType": "PractitionerRole",
            "id": "prr-dr-okafor",
            "active": True,
            "practitioner": {"reference": "Practitioner/dr-okafor"},
            "organization": {"reference": HOSPITAL},
        },
        {
            "resourceType": "Practitioner",
            "id": "cbo-intake-lee",
            "active": True,
            "name": [{"family": "Lee", "given": ["Jordan"]}],
        },
        {
            "resourceType": "PractitionerRole",
            "id": "prr-intake-lee",
            "active": True,
            "practitioner": {"reference": "Practitioner/cbo-intake-lee"},
            "organization": {"reference": FOOD_BANK},
        },
        {
            "resourceType": "Patient",
            "id": "pat-1001",
            "active": True,
            "identifier": [
                {
                    "system": "http://mercyhospital.example.org/identifiers/mrn",
                    "value": "MRN-0048213",
                }
            ],
            "name": [{"family": "Rivera", "given": ["Denise"]}],
            "gender": "female",
            "birthDate": "1986-03-14",
        },
        {
            "resourceType": "Patient",
            "id": "pat-1002",
            "active": True,
            "identifier": [
                {
                    "system": "http://mercyhospital.example.org/identifiers/mrn",
                    "value": "MRN-0051177",
                }
            ],
            "name": [{"family": "Okonkwo", "given": ["Samuel"]}],
            "gender": "male",
            "birthDate": "1959-11-02",
        },
    ]


def referral_steps(referral: str) -> list[Step]:
    """The loop for one referral id, forbidden moves included, in the order to run them."""
    sr_id, task_id, proc_id = f"sr-{referral}", f"task-{referral}", f"proc-{referral}"
    consent_id, condition_id = f"consent-{referral}", f"cond-{referral}"
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "meta": {"profile": [f"{SDOHCC}SDOHCC-TaskForReferralManagement"]},
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "focus": {"reference": f"ServiceRequest/{sr_id}"},
        "for": {"reference": "Patient/pat-1001"},
        "authoredOn": "2026-11-20T14:06:00Z",
        "requester": {"reference": "PractitionerRole/prr-dr-okafor"},
        "owner": {"reference": FOOD_BANK},
    }
    referral_bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _put(
                {
                    "resourceType": "Consent",
                    "id": consent_id,
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
                                }
                            ]
                        }
                    ],
                    "patient": {"reference": "Patient/pat-1001"},
                    "dateTime": "2026-11-20T14:00:00Z",
                    "organization": [{"reference": HOSPITAL}],
                    "sourceAttachment": {
                        "title": "Signed consent to share with community partners"
                    },
                    "policyRule": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/consentpolicycodes",
                                "code": "hipaa-auth",
                            }
                        ]
                    },
                }
            ),
            _put(
                {
                    "resourceType": "Condition",
                    "id": condition_id,
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
                    "code": {
                        "coding": [
                            {"system": SNOMED, "code": "733423003", "display": "Food insecurity"}
                        ]
                    },
                    "subject": {"reference": "Patient/pat-1001"},
                }
            ),
            _put(
                {
                    "resourceType": "ServiceRequest",
                    "id": sr_id,
                    "meta": {"profile": [f"{SDOHCC}SDOHCC-ServiceRequest"]},
                    "status": "active",
                    "intent": "order",
                    "category": [{"coding": [{"system": TEMP, "code": "food-insecurity"}]}],
                    "code": {
                        "coding": [
                            {
                                "system": SNOMED,
                                "code": "467771000124109",
                                "display": "Assistance with application for food pantry program",
                            }
                        ]
                    },
                    "subject": {"reference": "Patient/pat-1001"},
                    "authoredOn": "2026-11-20T14:05:00Z",
                    "requester": {"reference": "PractitionerRole/prr-dr-okafor"},
                    "performer": [{"reference": FOOD_BANK}],
                    "reasonReference": [{"reference": f"Condition/{condition_id}"}],
                    "supportingInfo": [{"reference": f"Consent/{consent_id}"}],
                }
            ),
            _put(task),
        ],
    }
    accepted = _with(task, status="accepted")
    started = _with(accepted, status="in-progress")
    procedure = {
        "resourceType": "Procedure",
        "id": proc_id,
        "meta": {"profile": [f"{SDOHCC}SDOHCC-Procedure"]},
        "basedOn": [{"reference": f"ServiceRequest/{sr_id}"}],
        "status": "completed",
        "category": {"coding": [{"system": TEMP, "code": "food-insecurity"}]},
        "code": {
            "coding": [
                {
                    "system": SNOMED,
                    "code": "467771000124109",
                    "display": "Assistance with application for food pantry program",
                }
            ]
        },
        "subject": {"reference": "Patient/pat-1001"},
        "performedDateTime": "2026-11-21T10:15:00Z",
        "performer": [{"actor": {"reference": FOOD_BANK}}],
    }
    completed = _with(
        started,
        status="completed",
        output=[
            {
                "type": {"coding": [{"system": TEMP, "code": "resulting-activity"}]},
                "valueReference": {"reference": f"Procedure/{proc_id}"},
            }
        ],
    )
    return [
        Step(
            "The hospital sends the referral: Consent, Condition, ServiceRequest and Task "
            "in one transaction",
            "POST",
            "",
            HOSPITAL,
            referral_bundle,
        ),
        Step(
            "Refused (403): another CBO tries to accept a referral it does not own",
            "PUT",
            f"Task/{task_id}",
            HOUSING,
            accepted,
            expect=403,
        ),
        Step(
            "Refused (422): the CBO tries to start work before accepting",
            "PUT",
            f"Task/{task_id}",
            FOOD_BANK,
            started,
            expect=422,
        ),
        Step(
            "The CBO accepts (If-Match guards against a stale copy)",
            "PUT",
            f"Task/{task_id}",
            FOOD_BANK,
            accepted,
            headers={"If-Match": 'W/"1"'},
        ),
        Step(
            "Refused (412): a second accept with the old ETag",
            "PUT",
            f"Task/{task_id}",
            FOOD_BANK,
            _with(accepted, businessStatus={"text": "stale"}),
            expect=412,
            headers={"If-Match": 'W/"1"'},
        ),
        Step("The CBO starts the work", "PUT", f"Task/{task_id}", FOOD_BANK, started),
        Step(
            "Refused (422): completing without saying what was done",
            "PUT",
            f"Task/{task_id}",
            FOOD_BANK,
            _with(started, status="completed"),
            expect=422,
        ),
        Step(
            "The CBO records what it did as a Procedure based on the referral",
            "PUT",
            f"Procedure/{proc_id}",
            FOOD_BANK,
            procedure,
            expect=201,
        ),
        Step(
            "The CBO completes the referral with the Procedure as its output",
            "PUT",
            f"Task/{task_id}",
            FOOD_BANK,
            completed,
        ),
        Step(
            "Refused (422): the hospital tries to reopen a completed referral",
            "PUT",
            f"Task/{task_id}",
            HOSPITAL,
            _with(completed, status="requested"),
            expect=422,
        ),
        Step(
            "The hospital sees the outcome: the Task with its Procedure and the request",
            "GET",
            f"Task?_id={task_id}&_include=Task:output&_include=Task:focus",
            HOSPITAL,
        ),
        Step(
            "...and who did what, when (one Provenance per change)",
            "GET",
            f"Provenance?target=Task/{task_id}&_sort=-recorded",
            HOSPITAL,
        ),
    ]


def json_api_steps(referral: str) -> list[Step]:
    """A second referral (Samuel Okonkwo, food pantry) run by the food bank with its API key."""
    sr_id, task_id = f"sr-{referral}-json", f"task-{referral}-json"
    bundle = referral_steps(referral)[0].body
    assert bundle is not None
    request = _with(
        bundle["entry"][2]["resource"],
        id=sr_id,
        subject={"reference": "Patient/pat-1002"},
        reasonReference=None,
        supportingInfo=None,
    )
    task = _with(
        bundle["entry"][3]["resource"],
        id=task_id,
        focus={"reference": f"ServiceRequest/{sr_id}"},
        **{"for": {"reference": "Patient/pat-1002"}},
    )
    referral_bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_put(_without_none(request)), _put(task)],
    }
    path = f"referrals/{task_id}"
    return [
        Step(
            "The hospital refers a second patient to the food bank (FHIR, as before)",
            "POST",
            "",
            HOSPITAL,
            referral_bundle,
        ),
        Step(
            "JSON API: the food bank lists its new referrals with its API key",
            "GET",
            "referrals?status=requested&sort=-created",
            FOOD_BANK,
            door="json",
        ),
        Step("JSON API: ...and reads this one", "GET", path, FOOD_BANK, door="json"),
        Step(
            "Refused (422): starting before accepting, the same rule as on FHIR",
            "POST",
            f"{path}/start",
            FOOD_BANK,
            expect=422,
            door="json",
        ),
        Step(
            "JSON API: the food bank accepts (safe to retry with the same Idempotency-Key)",
            "POST",
            f"{path}/accept",
            FOOD_BANK,
            headers={"Idempotency-Key": f"accept-{referral}"},
            door="json",
        ),
        Step(
            "JSON API: a message to the referring clinician (a Task.note on the FHIR side)",
            "POST",
            f"{path}/messages",
            FOOD_BANK,
            {"text": "Mr. Okonkwo can pick up groceries on Thursdays from 2pm."},
            expect=201,
            door="json",
        ),
        Step("JSON API: the food bank starts", "POST", f"{path}/start", FOOD_BANK, door="json"),
        Step(
            "JSON API: ...and completes with the outcome (Loopgate writes the Procedure)",
            "POST",
            f"{path}/complete",
            FOOD_BANK,
            {
                "outcome": "enrolled",
                "performed": "2026-11-21",
                "note": "Enrolled in the weekly pantry program.",
            },
            door="json",
        ),
        Step(
            "The hospital sees every step on FHIR: Task, Procedure and Provenance",
            "GET",
            f"Task?_id={task_id}&_include=Task:output&_revinclude=Provenance:target",
            HOSPITAL,
        ),
    ]


def subscription_steps(referral: str) -> tuple[Step, Step]:
    """The hospital subscribes to changes of the referrals it makes (the Gravity Task topic,
    rest-hook, id-only), and at the end replays every event it was sent."""
    subscription_id = f"sub-{referral}"
    subscription = {
        "resourceType": "Subscription",
        "id": subscription_id,
        "meta": {"profile": [f"{BACKPORT}backport-subscription"]},
        "status": "requested",
        "reason": "Mercy Hospital follows its referrals",
        "criteria": GRAVITY_TASK_TOPIC,
        "_criteria": {
            "extension": [
                {
                    "url": f"{BACKPORT}backport-filter-criteria",
                    "valueString": f"Task?requester={HOSPITAL}",
                }
            ]
        },
        "channel": {
            "extension": [{"url": f"{BACKPORT}backport-heartbeat-period", "valueUnsignedInt": 60}],
            "type": "rest-hook",
            "endpoint": RECEIVER_URL,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {"url": f"{BACKPORT}backport-payload-content", "valueCode": "id-only"}
                ]
            },
        },
    }
    return (
        Step(
            "The hospital subscribes to its referrals' changes (a handshake, then a "
            "notification per step, heartbeats meanwhile)",
            "PUT",
            f"Subscription/{subscription_id}",
            HOSPITAL,
            subscription,
            expect=201,
        ),
        Step(
            "The hospital replays every event it was sent, numbered with no gaps ($events)",
            "GET",
            f"Subscription/{subscription_id}/$events",
            HOSPITAL,
        ),
    )


def run_demo(settings: Settings, *, out: TextIO) -> str:
    """Provision the sandbox into the configured database and print the loop; returns the id."""
    keys = demo_keys(settings.demo_dir)
    provisioning = ProvisioningFile(
        resources=sandbox(),
        users=demo_users(),
        clients=demo_clients(keys),
        partners=[
            PartnerSpec(
                organization=FOOD_BANK,
                api_keys=[demo_api_key(settings.demo_dir)],
                policy=PolicySpec(respond_within_hours=72, close_within_days=30),
            )
        ],
    )
    provision_database(settings, provisioning)
    referral = uuid.uuid4().hex[:8]
    print_loop(settings, referral, out=out)
    return referral


def demo_keys(directory: Path) -> dict[str, dict[str, Any]]:
    """One private signing key per demo client, made on the first run and kept (mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = {}
    for client_id in CLIENTS.values():
        path = key_path(directory, client_id)
        if not path.exists():
            path.write_text(json.dumps(generate_client_key(client_id)))
            path.chmod(0o600)
        keys[client_id] = json.loads(path.read_text())
    return keys


def demo_api_key(directory: Path) -> str:
    """The food bank's API key, made on the first run and kept (mode 0600)."""
    path = api_key_path(directory)
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(new_api_key())
        path.chmod(0o600)
    return path.read_text().strip()


def api_key_path(directory: Path) -> Path:
    return directory / "eastside-food-bank.api-key"


def key_path(directory: Path, client_id: str) -> Path:
    return directory / f"{client_id}.jwk.json"


def demo_clients(keys: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "client_id": client_id,
            "type": "backend",
            "jwks": {"keys": [public_jwk(keys[client_id])]},
            "scope": "system/*.cruds",
            "organization": organization,
        }
        for organization, client_id in CLIENTS.items()
    ]


def demo_users() -> list[dict[str, Any]]:
    return [
        {
            "username": "dr.okafor",
            "password": DEMO_PASSWORD,
            "fhir_user": "Practitioner/dr-okafor",
            "organization": HOSPITAL,
            "roles": ["clinician"],
        },
        {
            "username": "j.lee",
            "password": DEMO_PASSWORD,
            "fhir_user": "Practitioner/cbo-intake-lee",
            "organization": FOOD_BANK,
            "roles": ["cbo-staff"],
        },
    ]


def print_loop(settings: Settings, referral: str, *, out: TextIO) -> None:
    base = settings.public_url
    out.write(
        "Loopgate sandbox ready: Mercy Hospital (Organization/mercy-hospital) refers patients\n"
        "to Eastside Community Food Bank (Organization/eastside-food-bank); Northside Housing\n"
        "Services (Organization/northside-housing) is a CBO with no part in this referral.\n\n"
        "Each organization calls Loopgate as a SMART Backend Services client; their private keys\n"
        f"are in {settings.demo_dir}/. Every command below first gets a 5-minute token with\n"
        f"{EXAMPLE_SCRIPT} (it signs an assertion\n"
        "and POSTs it to /auth/token), then makes one FHIR call.\n"
        f"People can sign in at {base}/auth/login as dr.okafor (hospital) or j.lee (food bank),\n"
        f"password {DEMO_PASSWORD}.\n\n"
        f"With Loopgate running (make run), run these in order (referral {referral}).\n"
        "To watch the hospital's notifications arrive, first start its receiver in another\n"
        f"terminal: python {RECEIVER_SCRIPT}\n\n"
    )
    subscribe, replay = subscription_steps(referral)
    numbered = enumerate([subscribe, *referral_steps(referral)], start=1)
    _write_steps(settings, numbered, out=out)
    out.write(
        "The same loop through the JSON API for community organizations, which most CBOs use:\n"
        f"plain JSON, the food bank's API key (in {api_key_path(settings.demo_dir)}), no FHIR.\n"
        f"API reference: {settings.api_base}/docs\n\n"
    )
    json_steps = [*json_api_steps(referral), replay]
    _write_steps(settings, enumerate(json_steps, start=len(referral_steps(referral)) + 2), out=out)


def _write_steps(settings: Settings, numbered: Iterable[tuple[int, Step]], *, out: TextIO) -> None:
    for number, step in numbered:
        out.write(f"# {number}. {step.title}  [expect {step.expect}]\n")
        out.write(curl_command(settings, step) + "\n\n")


def token_command(settings: Settings, organization: str) -> str:
    client_id = CLIENTS[organization]
    parts = [
        sys.executable,
        str(EXAMPLE_SCRIPT),
        "--key",
        str(key_path(settings.demo_dir, client_id)),
        "--client-id",
        client_id,
        "--token-url",
        f"{settings.public_url}/auth/token",
        "--scope",
        "system/*.cruds",
        "--print-token",
    ]
    return " ".join(shlex.quote(part) for part in parts)


def curl_command(settings: Settings, step: Step) -> str:
    base = settings.fhir_base if step.door == "fhir" else settings.api_base
    url = f"{base}/{step.path}" if step.path else base
    parts = ["curl", "-sS", "-w", r"'\n%{http_code}\n'"]
    if step.method != "GET":
        parts += ["-X", step.method]
    parts.append(shlex.quote(url))
    if step.door == "fhir":
        credential = token_command(settings, step.organization)
    else:
        credential = f"cat {shlex.quote(str(api_key_path(settings.demo_dir)))}"
    parts += ["-H", f'"Authorization: Bearer $({credential})"']
    headers = dict(step.headers)
    if step.body is not None:
        media = "application/fhir+json" if step.door == "fhir" else "application/json"
        headers["Content-Type"] = media
    for name, value in headers.items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    if step.body is None:
        return " ".join(parts)
    parts += ["--data-binary", "@-", "<<'JSON'"]
    return " ".join(parts) + "\n" + json.dumps(step.body, indent=2) + "\nJSON"


def _put(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }


def _without_none(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if value is not None}


def _with(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    updated = copy.deepcopy(resource)
    updated.update(changes)
    return updated
