"""The JSON API for community organizations: a CBO with nothing but HTTP and its API key runs
the referral loop, and the hospital sees every step on the FHIR side."""

import functools
import operator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.builders import (
    CBO,
    HOSPITAL,
    OTHER_CBO,
    TEMP,
    as_org,
    service_request,
    task,
)
from tests.partners import API, CBO_KEY, OTHER_CBO_KEY, key_headers, provision_partners
from tests.tokens import mint

REASON_SYSTEM = "urn:loopgate:codesystem:referral-reason"
PROBLEM = "application/problem+json"


@pytest.fixture
def referral(client: TestClient) -> str:
    """Both CBOs provisioned with keys; the hospital refers Denise Rivera to the food bank."""
    provision_partners(client)
    refer(client, "task-1")
    return "task-1"


def refer(client: TestClient, task_id: str, **overrides: Any) -> dict[str, Any]:
    response = client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    assert response.status_code in (200, 201), response.text
    response = client.put(
        f"/fhir/Task/{task_id}", json=task(task_id, **overrides), headers=as_org(HOSPITAL)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def fhir(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(f"/fhir/{path}", headers=as_org(HOSPITAL))
    assert response.status_code == 200, response.text
    return dict(response.json())


def post(client: TestClient, path: str, body: Any = None, **headers: str) -> Any:
    return client.post(f"{API}{path}", json=body, headers=key_headers(**headers))


# --- the loop ---------------------------------------------------------------------------------


def test_done_when__a_cbo_with_only_its_key_runs_the_loop_and_the_hospital_sees_each_step(
    client: TestClient, referral: str
) -> None:
    listing = client.get(f"{API}/referrals", headers=key_headers())
    assert listing.status_code == 200
    [item] = listing.json()["items"]
    assert (item["id"], item["status"], item["need"]["code"]) == (
        referral,
        "requested",
        "food-insecurity",
    )
    assert item["client"]["name"]["text"] == "Denise M. Rivera"
    assert item["referrer"]["organization"] == "Mercy Hospital"
    assert set(item["allowed_actions"]) >= {"accept", "decline"}

    accepted = post(client, f"/referrals/{referral}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert fhir(client, f"Task/{referral}")["status"] == "accepted"

    assert post(client, f"/referrals/{referral}/start").json()["status"] == "in-progress"
    held = post(
        client, f"/referrals/{referral}/hold", {"reason": "waitlisted", "text": "Next slot Monday"}
    )
    assert held.json()["status"] == "on-hold"
    on_hold = fhir(client, f"Task/{referral}")
    assert on_hold["status"] == "on-hold"
    assert on_hold["statusReason"]["text"] == "Next slot Monday"
    assert on_hold["statusReason"]["coding"][0] == {
        "system": REASON_SYSTEM,
        "code": "waitlisted",
        "display": on_hold["statusReason"]["coding"][0]["display"],
    }
    assert post(client, f"/referrals/{referral}/resume").json()["status"] == "in-progress"

    message = post(client, f"/referrals/{referral}/messages", {"text": "Client enrolled."})
    assert message.status_code == 201
    assert message.json()["text"] == "Client enrolled."

    completed = post(
        client,
        f"/referrals/{referral}/complete",
        {"outcome": "service-provided", "performed": "2025-03-14", "note": "Two weeks of meals"},
    )
    assert completed.status_code == 200, completed.text
    view = completed.json()
    assert view["status"] == "completed"
    assert view["outcome"]["code"] == "service-provided"
    assert view["allowed_actions"] == []

    # the hospital's FHIR client sees all of it
    final = fhir(client, f"Task/{referral}")
    assert final["status"] == "completed"
    assert next(n["text"] for n in final["note"]) == "Client enrolled."
    [output] = final["output"]
    procedure = fhir(client, output["valueReference"]["reference"])
    assert procedure["status"] == "completed"
    assert procedure["basedOn"] == [{"reference": "ServiceRequest/sr-food-2001"}]
    assert procedure["performedDateTime"].startswith("2025-03-14")
    assert procedure["performer"][0]["actor"]["reference"] == CBO
    provenance = fhir(client, f"Provenance?target=Task/{referral}&_count=50")
    agents = [entry["resource"]["agent"][0]["who"]["reference"] for entry in provenance["entry"]]
    assert agents.count(CBO) == 6  # accept, start, hold, resume, message, complete
    assert agents.count(HOSPITAL) == 1
    history = fhir(client, f"Task/{referral}/_history")
    assert [e["resource"]["status"] for e in history["entry"]][::-1] == [
        "requested",
        "accepted",
        "in-progress",
        "on-hold",
        "in-progress",
        "in-progress",
        "completed",
    ]


def test_decline__records_the_coded_reason_and_text_the_hospital_reads(
    client: TestClient, referral: str
) -> None:
    declined = post(
        client,
        f"/referrals/{referral}/decline",
        {"reason": "out-of-service-area", "text": "We serve the east side only"},
    )
    assert declined.status_code == 200, declined.text
    assert declined.json()["status_reason"] == {
        "code": "out-of-service-area",
        "text": "We serve the east side only",
    } | {k: v for k, v in declined.json()["status_reason"].items() if k == "display"}
    stored = fhir(client, f"Task/{referral}")
    assert stored["status"] == "rejected"
    assert stored["statusReason"]["coding"][0]["code"] == "out-of-service-area"
    assert stored["statusReason"]["text"] == "We serve the east side only"


def test_actions__the_workflow_refuses_what_the_fhir_door_refuses(
    client: TestClient, referral: str
) -> None:
    early = post(client, f"/referrals/{referral}/start")
    assert early.status_code == 422
    assert early.headers["content-type"] == PROBLEM
    assert early.json()["type"].endswith("/problems/transition-not-allowed")
    assert fhir(client, f"Task/{referral}")["status"] == "requested"

    no_outcome = post(client, f"/referrals/{referral}/complete", {})
    assert no_outcome.status_code == 400
    assert no_outcome.json()["type"].endswith("/problems/bad-request")
    assert any(e.get("pointer", "").endswith("outcome") for e in no_outcome.json()["errors"])

    bad_reason = post(client, f"/referrals/{referral}/decline", {"reason": "waitlisted"})
    assert bad_reason.status_code == 400  # waitlisted is a hold reason, not a decline reason


def test_messages__both_sides_see_one_conversation(client: TestClient, referral: str) -> None:
    assert post(
        client, f"/referrals/{referral}/messages", {"text": "When can she come?"}
    ).is_success
    task_now = fhir(client, f"Task/{referral}")
    task_now["note"].append(
        {"text": "Tuesdays after 3pm.", "authorReference": {"reference": HOSPITAL}}
    )
    reply = client.put(f"/fhir/Task/{referral}", json=task_now, headers=as_org(HOSPITAL))
    assert reply.status_code == 200, reply.text

    messages = client.get(f"{API}/referrals/{referral}/messages", headers=key_headers())
    assert [m["text"] for m in messages.json()["items"]] == [
        "When can she come?",
        "Tuesdays after 3pm.",
    ]
    assert messages.json()["items"][0]["author"] == CBO


# --- who may do what --------------------------------------------------------------------------


def test_auth__no_unknown_or_revoked_key_is_401_problem(client: TestClient, referral: str) -> None:
    for headers in ({}, key_headers("lgk_not-a-key-we-ever-issued-0123456789abcdef")):
        response = client.get(f"{API}/referrals", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"].startswith("Bearer")

    [key] = client.get(f"{API}/api-keys", headers=key_headers()).json()["items"]
    assert client.delete(f"{API}/api-keys/{key['id']}", headers=key_headers()).status_code == 204
    assert client.get(f"{API}/referrals", headers=key_headers()).status_code == 401


def test_auth__a_key_acts_only_for_its_organization(client: TestClient, referral: str) -> None:
    other = key_headers(OTHER_CBO_KEY)
    assert client.get(f"{API}/referrals", headers=other).json()["items"] == []
    assert client.get(f"{API}/referrals/{referral}", headers=other).status_code == 404
    refused = client.post(f"{API}/referrals/{referral}/accept", headers=other)
    assert refused.status_code == 404
    assert "Rivera" not in refused.text
    assert fhir(client, f"Task/{referral}")["status"] == "requested"


def test_auth__smart_backend_tokens_for_the_api_audience_work_fhir_ones_do_not(
    client: TestClient, engine: Engine, referral: str
) -> None:
    api_token = mint(engine, organization=CBO, audience="http://127.0.0.1:8080/api/v1")
    fhir_token = mint(engine, organization=CBO)
    ok = client.get(f"{API}/referrals/{referral}", headers={"Authorization": f"Bearer {api_token}"})
    assert ok.status_code == 200
    wrong = client.get(f"{API}/referrals", headers={"Authorization": f"Bearer {fhir_token}"})
    assert wrong.status_code == 401
    accepted = client.post(
        f"{API}/referrals/{referral}/accept", headers={"Authorization": f"Bearer {api_token}"}
    )
    assert accepted.json()["status"] == "accepted"


def test_api_keys__shown_once_listed_without_the_key_marked_when_used(
    client: TestClient, referral: str
) -> None:
    created = post(client, "/api-keys", {"label": "case management"})
    assert created.status_code == 201
    new_key = created.json()["key"]
    assert new_key.startswith("lgk_")
    listed = client.get(f"{API}/api-keys", headers=key_headers()).json()["items"]
    assert len(listed) == 2
    assert all("key" not in item for item in listed)
    assert new_key not in str(listed)
    fresh = next(item for item in listed if item["id"] == created.json()["id"])
    assert fresh["label"] == "case management"
    assert fresh.get("last_used") is None

    assert client.get(f"{API}/referrals", headers=key_headers(new_key)).status_code == 200
    listed = client.get(f"{API}/api-keys", headers=key_headers(new_key)).json()["items"]
    assert next(i for i in listed if i["id"] == fresh["id"])["last_used"] is not None


# --- idempotency ------------------------------------------------------------------------------


def test_idempotency_key__a_retry_replays_the_answer_and_acts_once(
    client: TestClient, referral: str
) -> None:
    body = {"text": "Calling her today."}
    first = post(client, f"/referrals/{referral}/messages", body, **{"Idempotency-Key": "m-1"})
    again = post(client, f"/referrals/{referral}/messages", body, **{"Idempotency-Key": "m-1"})
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    assert len(fhir(client, f"Task/{referral}")["note"]) == 1

    other = post(
        client, f"/referrals/{referral}/messages", {"text": "x"}, **{"Idempotency-Key": "m-1"}
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("/problems/business-rule-violation")

    # a key is the caller's own: another organization's same key is a different request
    accept = post(client, f"/referrals/{referral}/accept", **{"Idempotency-Key": "a-1"})
    assert accept.json()["status"] == "accepted"
    retried = post(client, f"/referrals/{referral}/accept", **{"Idempotency-Key": "a-1"})
    assert retried.status_code == 200
    assert retried.json()["version"] == accept.json()["version"]


# --- listing ----------------------------------------------------------------------------------


def test_listing__filters_sorts_and_pages_with_a_cursor(client: TestClient, referral: str) -> None:
    for n in range(2, 6):
        refer(client, f"task-{n}")
    post(client, "/referrals/task-3/accept")

    def ids(query: str) -> list[str]:
        response = client.get(f"{API}/referrals?{query}", headers=key_headers())
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids("status=accepted") == ["task-3"]
    assert sorted(ids("status=requested,accepted")) == [f"task-{n}" for n in range(1, 6)]
    assert ids("need=housing-instability") == []
    assert len(ids("need=food-insecurity")) == 5
    assert ids("sort=-updated")[0] == "task-3"
    assert ids("sort=updated")[-1] == "task-3"

    pages, cursor = [], ""
    while True:
        response = client.get(
            f"{API}/referrals?limit=2&sort=updated{cursor}", headers=key_headers()
        ).json()
        pages.append([item["id"] for item in response["items"]])
        if response.get("next_cursor") is None:
            break
        cursor = f"&cursor={response['next_cursor']}"
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(functools.reduce(operator.iadd, pages, [])) == [f"task-{n}" for n in range(1, 6)]

    since = client.get(f"{API}/referrals/task-3", headers=key_headers()).json()["updated"]
    assert ids(f"updated_since={since.replace('+', '%2B')}") == []
    for query, where in (
        ("status=received", "status"),
        ("updated_since=yesterday", "updated_since"),
        ("cursor=bogus", "cursor"),
        ("limit=0", "limit"),
    ):
        refused = client.get(f"{API}/referrals?{query}", headers=key_headers())
        assert refused.status_code == 400, query
        assert refused.headers["content-type"] == PROBLEM
        assert where in str(refused.json()["errors"])
    other_filters = client.get(
        f"{API}/referrals?limit=2&sort=updated", headers=key_headers()
    ).json()["next_cursor"]
    assert (
        client.get(
            f"{API}/referrals?limit=2&sort=-updated&cursor={other_filters}", headers=key_headers()
        ).status_code
        == 400
    )


# --- minimum necessary ------------------------------------------------------------------------


def test_consent_policy__client_details_withheld_until_a_consent_covers_them(
    client: TestClient,
) -> None:
    provision_partners(
        client, {"organization": CBO, "api_keys": [CBO_KEY], "policy": {"consent_required": True}}
    )
    refer(client, "task-1")
    view = client.get(f"{API}/referrals/task-1", headers=key_headers()).json()
    assert view["client"]["withheld"] is True
    assert view["client"]["withheld_reason"] == "consent-required"
    assert view["client"].get("name") is None
    assert view["client"].get("birth_date") is None
    assert "Rivera" not in client.get(f"{API}/referrals", headers=key_headers()).text


def test_contacting_prohibited__no_contact_data_in_the_view(client: TestClient) -> None:
    provision_partners(client, patient={"telecom": [{"system": "phone", "value": "555-0100"}]})
    client.put(
        "/fhir/ServiceRequest/sr-food-2001",
        json=service_request(
            orderDetail=[{"coding": [{"system": TEMP, "code": "contacting-subject-prohibited"}]}]
        ),
        headers=as_org(HOSPITAL),
    )
    client.put("/fhir/Task/task-1", json=task("task-1"), headers=as_org(HOSPITAL))
    view = client.get(f"{API}/referrals/task-1", headers=key_headers()).json()
    assert view["client"]["contact_prohibited"] is True
    assert "555-0100" not in str(view)


# --- capacity ---------------------------------------------------------------------------------


def test_capacity__sets_the_gravity_extension_on_the_cbos_healthcare_service(
    client: TestClient, referral: str
) -> None:
    response = client.put(
        f"{API}/capacity",
        json={"status": "waitlist", "note": "Two-week wait"},
        headers=key_headers(),
    )
    assert response.status_code == 200, response.text
    [service] = response.json()["services"]
    assert (service["status"], service["note"]) == ("waitlist", "Two-week wait")
    stored = fhir(client, service["service"])
    assert stored["providedBy"] == {"reference": CBO}
    [extension] = stored["extension"]
    assert extension["url"].endswith("SDOHCC-ExtensionHealthcareServiceCapacityStatus")
    assert extension["extension"][0]["valueCodeableConcept"]["coding"][0] == {
        "system": TEMP,
        "code": "waitlist",
    }
    again = client.put(f"{API}/capacity", json={"status": "capacity"}, headers=key_headers())
    assert [s["status"] for s in again.json()["services"]] == ["capacity"]
    assert client.get(f"{API}/capacity", headers=key_headers()).json() == again.json()
    unknown = client.put(
        f"{API}/capacity",
        json={"status": "capacity", "services": ["HealthcareService/not-ours"]},
        headers=key_headers(),
    )
    assert unknown.status_code == 404


# --- the document and its errors --------------------------------------------------------------


def test_openapi__is_3_1_and_documents_problem_json_errors(client: TestClient) -> None:
    document = client.get(f"{API}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    accept = document["paths"]["/referrals/{referral_id}/accept"]["post"]
    assert PROBLEM in accept["responses"]["422"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in accept["parameters"])
    docs = client.get(f"{API}/docs")
    assert docs.status_code == 200
    assert "openapi.json" in docs.text
    problem_doc = client.get(f"{API}/problems/transition-not-allowed")
    assert problem_doc.status_code == 200
    assert "status" in problem_doc.json()["description"]


def test_errors__never_echo_what_was_sent(client: TestClient, referral: str) -> None:
    response = post(
        client, f"/referrals/{referral}/decline", {"reason": "Denise Rivera 1986-03-14"}
    )
    assert response.status_code == 400
    assert "Rivera" not in response.text
    assert "1986" not in response.text
    broken = client.post(
        f"{API}/referrals/{referral}/decline",
        content=b'{"reason": "Rivera',
        headers=key_headers(**{"Content-Type": "application/json"}),
    )
    assert broken.status_code == 400
    assert "Rivera" not in broken.text


def test_reason_codes__published_as_a_fhir_codesystem_everyone_can_read(
    client: TestClient, engine: Engine, referral: str
) -> None:
    post(client, f"/referrals/{referral}/decline", {"reason": "not-eligible"})
    coding = fhir(client, f"Task/{referral}")["statusReason"]["coding"][0]
    codesystem = fhir(client, "CodeSystem/loopgate-referral-reason")
    assert codesystem["url"] == coding["system"] == REASON_SYSTEM
    concept = next(c for c in codesystem["concept"] if c["code"] == coding["code"])
    assert concept["display"] == coding["display"]
    listed = client.get(f"{API}/codes/reasons", headers=key_headers()).json()
    assert {c["code"] for c in listed["codes"]} == {c["code"] for c in codesystem["concept"]}
    assert codesystem["meta"]["versionId"] == "1"  # published once, not per start
    # terminology is no one's data: a patient-confined token of an unrelated app reads it too
    patient_app = mint(
        engine, organization=OTHER_CBO, scope="patient/*.rs", patient="Patient/pat-1001"
    )
    read = client.get(
        "/fhir/CodeSystem/loopgate-referral-reason",
        headers={"Authorization": f"Bearer {patient_app}"},
    )
    assert read.status_code == 200
