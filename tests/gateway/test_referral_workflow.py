"""The Gravity referral workflow over FHIR REST: the whole loop and every refused move."""

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
    bearer,
    create_referral,
    moved,
    procedure,
    resulting_activity,
    seed_network,
    service_request,
    task,
)
from tests.tokens import mint


def _put_task(client: TestClient, body: dict, org: str, **headers: str) -> Any:
    return client.put(f"/fhir/Task/{body['id']}", json=body, headers=as_org(org, **headers))


def _advance(client: TestClient, current: dict, org: str, **changes: Any) -> dict:
    response = _put_task(client, moved(current, **changes), org)
    assert response.status_code == 200, response.text
    return response.json()


def _reason(text: str) -> dict:
    return {"coding": [{"system": "https://loopgate.example/reasons", "code": "x"}], "text": text}


def test_loop__requested_to_completed_with_a_procedure(client: TestClient) -> None:
    current = create_referral(client)
    current = _advance(client, current, CBO, status="accepted")
    current = _advance(
        client, current, CBO, status="in-progress", businessStatus={"text": "Client contacted"}
    )
    current = _advance(
        client, current, CBO, status="on-hold", statusReason=_reason("Waiting for proof of address")
    )
    current = _advance(client, current, CBO, status="in-progress")
    assert (
        client.put("/fhir/Procedure/proc-1", json=procedure(), headers=as_org(CBO)).status_code
        == 201
    )
    current = _advance(
        client, current, CBO, status="completed", output=[resulting_activity("proc-1")]
    )
    assert current["status"] == "completed"
    assert current["meta"]["versionId"] == "6"

    included = client.get(
        "/fhir/Task?_id=task-1&_include=Task:output", headers=as_org(HOSPITAL)
    ).json()
    kinds = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in included["entry"]}
    assert kinds == {("Task", "match"), ("Procedure", "include")}


def test_loop__every_task_change_has_a_provenance(client: TestClient) -> None:
    current = create_referral(client)
    _advance(client, current, CBO, status="accepted")
    bundle = client.get(
        "/fhir/Provenance?target=Task/task-1&_sort=recorded", headers=as_org(HOSPITAL)
    ).json()
    provenances = [e["resource"] for e in bundle["entry"]]
    assert [p["target"][0]["reference"] for p in provenances] == [
        "Task/task-1/_history/1",
        "Task/task-1/_history/2",
    ]
    assert [p["agent"][0]["who"]["reference"] for p in provenances] == [HOSPITAL, CBO]
    assert [p["activity"]["coding"][0]["code"] for p in provenances] == ["CREATE", "UPDATE"]


def test_provenance__names_the_user_on_behalf_of_the_organization(
    client: TestClient, engine: Engine
) -> None:
    current = create_referral(client)
    staff = mint(
        engine,
        organization=CBO,
        fhir_user="Practitioner/intake-1",
        scope="user/Task.cruds",
        client_id="cbo-inbox",
    )
    response = client.put(
        "/fhir/Task/task-1", json=moved(current, status="accepted"), headers=bearer(staff)
    )
    assert response.status_code == 200
    bundle = client.get(
        "/fhir/Provenance?target=Task/task-1&_sort=-recorded", headers=as_org(HOSPITAL)
    ).json()
    latest = bundle["entry"][0]["resource"]
    assert latest["target"] == [{"reference": "Task/task-1/_history/2"}]
    agent = latest["agent"][0]
    assert agent["who"] == {"reference": "Practitioner/intake-1"}
    assert agent["onBehalfOf"] == {"reference": CBO}
    assert latest["agent"][1]["who"]["identifier"]["value"] == "cbo-inbox"


@pytest.mark.parametrize(
    ("path", "target"),
    [
        (["requested"], "in-progress"),
        (["requested"], "completed"),
        (["requested"], "on-hold"),
        (["requested", "accepted"], "requested"),
        (["requested", "rejected"], "accepted"),
        (["requested", "accepted", "failed"], "in-progress"),
        (["requested", "accepted", "in-progress"], "accepted"),
    ],
)
def test_transition__moves_off_the_gravity_diagram_are_422(
    client: TestClient, path: list[str], target: str
) -> None:
    current = create_referral(client)
    for status in path[1:]:
        reason = _reason("because") if status in ("rejected", "failed") else None
        changes: dict[str, Any] = {"status": status}
        if reason:
            changes["statusReason"] = reason
        current = _advance(client, current, CBO, **changes)
    response = _put_task(client, moved(current, status=target, statusReason=_reason("trying")), CBO)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["issue"][0]["expression"] == ["Task.status"]
    assert client.get("/fhir/Task/task-1", headers=as_org(HOSPITAL)).json()["status"] == path[-1]


@pytest.mark.parametrize("status", ["received", "ready", "bogus"])
def test_profile__non_referral_statuses_are_422(client: TestClient, status: str) -> None:
    create_referral(client)
    response = _put_task(client, task(status=status), HOSPITAL)
    assert response.status_code == 422
    assert "Task.status" in response.json()["issue"][0]["expression"]


@pytest.mark.parametrize(
    ("org", "target"),
    [(HOSPITAL, "accepted"), (HOSPITAL, "completed"), (CBO, "entered-in-error")],
)
def test_roles__a_party_setting_the_other_sides_status_is_403(
    client: TestClient, org: str, target: str
) -> None:
    current = create_referral(client)
    if target == "completed":
        current = _advance(client, current, CBO, status="accepted")
    response = _put_task(client, moved(current, status=target), org)
    assert response.status_code in (403, 422)
    if target != "completed":
        assert response.status_code == 403


def test_roles__the_requester_cannot_accept(client: TestClient) -> None:
    current = create_referral(client)
    response = _put_task(client, moved(current, status="accepted"), HOSPITAL)
    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"


def test_roles__an_unrelated_organization_can_change_nothing(client: TestClient) -> None:
    current = create_referral(client)
    for change in (
        {"status": "accepted"},
        {"priority": "urgent"},
        {"status": "cancelled", "statusReason": _reason("x")},
    ):
        response = _put_task(client, moved(current, **change), OTHER_CBO)
        assert response.status_code == 403
    assert (
        client.get("/fhir/Task/task-1", headers=as_org(HOSPITAL)).json()["meta"]["versionId"] == "1"
    )


def test_roles__only_the_requester_organization_creates_the_task(client: TestClient) -> None:
    seed_network(client)
    client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    response = _put_task(client, task(), CBO)
    assert response.status_code == 403
    assert response.json()["issue"][0]["expression"] == ["Task.requester"]


def test_create__a_task_starts_as_draft_or_requested(client: TestClient) -> None:
    create_referral(client)
    response = client.post(
        "/fhir/Task", json=task("t2", status="accepted"), headers=as_org(HOSPITAL)
    )
    assert response.status_code == 422
    draft = client.post("/fhir/Task", json=task("t3", status="draft"), headers=as_org(HOSPITAL))
    assert draft.status_code == 201


def test_create__requester_as_organization_is_accepted(client: TestClient) -> None:
    create_referral(client)
    response = client.post(
        "/fhir/Task", json=task("t2", requester={"reference": HOSPITAL}), headers=as_org(HOSPITAL)
    )
    assert response.status_code == 201


def test_create__unresolvable_requester_is_422(client: TestClient) -> None:
    create_referral(client)
    external = {"reference": "https://ehr.example.org/fhir/PractitionerRole/prr-1"}
    response = client.post(
        "/fhir/Task", json=task("t2", requester=external), headers=as_org(HOSPITAL)
    )
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Task.requester"]


@pytest.mark.parametrize("status", ["rejected", "on-hold", "failed", "cancelled"])
def test_status_reason__required_for_rejections_holds_failures_and_cancellations(
    client: TestClient, status: str
) -> None:
    current = create_referral(client)
    if status in ("on-hold", "failed"):
        current = _advance(client, current, CBO, status="accepted")
    response = _put_task(client, moved(current, status=status), CBO)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Task.statusReason.text"]
    with_reason = _put_task(
        client, moved(current, status=status, statusReason=_reason("No capacity")), CBO
    )
    assert with_reason.status_code == 200


def test_status_reason__needs_text_whenever_sent(client: TestClient) -> None:
    current = create_referral(client)
    response = _put_task(
        client, moved(current, status="accepted", statusReason={"coding": [{"code": "x"}]}), CBO
    )
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Task.statusReason.text"]


def test_completion__needs_a_resulting_activity(client: TestClient) -> None:
    current = _advance(client, create_referral(client), CBO, status="accepted")
    response = _put_task(client, moved(current, status="completed"), CBO)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Task.output"]


def test_completion__a_procedure_code_is_enough(client: TestClient) -> None:
    current = _advance(client, create_referral(client), CBO, status="accepted")
    output = {
        "type": {"coding": [{"system": TEMP, "code": "resulting-activity"}]},
        "valueCodeableConcept": {
            "coding": [{"system": "http://snomed.info/sct", "code": "467771000124109"}]
        },
    }
    done = _advance(client, current, CBO, status="completed", output=[output])
    assert done["status"] == "completed"


def test_completion__the_procedure_must_exist_and_be_based_on_the_focus(
    client: TestClient,
) -> None:
    current = _advance(client, create_referral(client), CBO, status="accepted")
    missing = _put_task(
        client, moved(current, status="completed", output=[resulting_activity("nope")]), CBO
    )
    assert missing.status_code == 422
    client.put(
        "/fhir/ServiceRequest/other-sr", json=service_request("other-sr"), headers=as_org(HOSPITAL)
    )
    client.put(
        "/fhir/Procedure/p-other", json=procedure("p-other", sr_id="other-sr"), headers=as_org(CBO)
    )
    unrelated = _put_task(
        client, moved(current, status="completed", output=[resulting_activity("p-other")]), CBO
    )
    assert unrelated.status_code == 422
    assert unrelated.json()["issue"][0]["expression"] == ["Task.output[0].valueReference"]


def test_edit_rights__owner_may_not_change_what_the_requester_owns(client: TestClient) -> None:
    current = create_referral(client)
    for change in (
        {"priority": "urgent"},
        {"focus": {"reference": "ServiceRequest/x"}},
        {"owner": {"reference": OTHER_CBO}},
        {"description": "changed"},
    ):
        response = _put_task(client, moved(current, status="accepted", **change), CBO)
        assert response.status_code == 403, change
        assert response.json()["issue"][0]["code"] == "forbidden"


def test_edit_rights__owner_appends_notes_but_never_rewrites_them(client: TestClient) -> None:
    current = create_referral(client)
    first = {"text": "Called the client", "time": "2025-03-11T10:00:00Z"}
    current = _advance(client, current, CBO, note=[first])
    current = _advance(client, current, CBO, note=[first, {"text": "Left a voicemail"}])
    rewritten = _put_task(client, moved(current, note=[{"text": "Never called"}]), CBO)
    assert rewritten.status_code == 403
    assert rewritten.json()["issue"][0]["expression"] == ["Task.note"]


def test_edit_rights__requester_may_reassign_and_edit(client: TestClient) -> None:
    current = create_referral(client)
    updated = _advance(client, current, HOSPITAL, owner={"reference": OTHER_CBO}, priority="urgent")
    assert updated["owner"] == {"reference": OTHER_CBO}
    # the old owner is no longer a party; the new one is
    assert _put_task(client, moved(updated, status="accepted"), CBO).status_code == 403
    assert _put_task(client, moved(updated, status="accepted"), OTHER_CBO).status_code == 200


def test_cancel__either_side_may_cancel_with_a_reason(client: TestClient) -> None:
    by_requester = create_referral(client)
    cancelled = _advance(
        client,
        by_requester,
        HOSPITAL,
        status="cancelled",
        statusReason=_reason("Patient moved away"),
    )
    assert cancelled["status"] == "cancelled"
    by_owner = _advance(client, create_referral(client, task_id="task-2"), CBO, status="accepted")
    assert (
        _advance(
            client, by_owner, CBO, status="cancelled", statusReason=_reason("Client unreachable")
        )["status"]
        == "cancelled"
    )


def test_terminal__completed_tasks_only_become_entered_in_error_by_the_requester(
    client: TestClient,
) -> None:
    current = _advance(client, create_referral(client), CBO, status="accepted")
    client.put("/fhir/Procedure/proc-1", json=procedure(), headers=as_org(CBO))
    done = _advance(client, current, CBO, status="completed", output=[resulting_activity("proc-1")])
    assert _put_task(client, moved(done, businessStatus={"text": "later"}), CBO).status_code == 422
    assert _put_task(client, moved(done, status="entered-in-error"), CBO).status_code == 403
    marked = _advance(client, done, HOSPITAL, status="entered-in-error")
    assert marked["status"] == "entered-in-error"
    assert _put_task(client, moved(marked, status="requested"), HOSPITAL).status_code == 422


def test_claim__an_unowned_requested_task_is_claimed_by_setting_owner(
    client: TestClient,
) -> None:
    seed_network(client)
    client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    open_task = task()
    del open_task["owner"]
    created = _put_task(client, open_task, HOSPITAL).json()
    claim_for_other = _put_task(
        client, moved(created, status="accepted", owner={"reference": OTHER_CBO}), CBO
    )
    assert claim_for_other.status_code == 403
    claimed = _advance(client, created, CBO, status="accepted", owner={"reference": CBO})
    assert claimed["owner"] == {"reference": CBO}
    found = client.get("/fhir/Task?owner:missing=true", headers=as_org(CBO)).json()
    assert found["total"] == 0


def test_if_match__optional_but_checked_when_sent(client: TestClient) -> None:
    current = create_referral(client)
    stale = _put_task(client, moved(current, status="accepted"), CBO, **{"If-Match": 'W/"7"'})
    assert stale.status_code == 412
    fresh = _put_task(client, moved(current, status="accepted"), CBO, **{"If-Match": 'W/"1"'})
    assert fresh.status_code == 200


def test_delete__only_draft_tasks_by_the_requester(client: TestClient) -> None:
    create_referral(client)
    assert client.delete("/fhir/Task/task-1", headers=as_org(HOSPITAL)).status_code == 422
    client.post("/fhir/Task", json=task("ignored", status="draft"), headers=as_org(HOSPITAL))
    drafts = client.get("/fhir/Task?status=draft", headers=as_org(HOSPITAL)).json()
    draft_id = drafts["entry"][0]["resource"]["id"]
    assert client.delete(f"/fhir/Task/{draft_id}", headers=as_org(CBO)).status_code == 403
    assert client.delete(f"/fhir/Task/{draft_id}", headers=as_org(HOSPITAL)).status_code == 204


def test_profile__service_request_violations_are_422_with_expressions(
    client: TestClient,
) -> None:
    seed_network(client)
    bad = service_request(category=[{"coding": [{"system": TEMP, "code": "hunger"}]}])
    del bad["code"]
    response = client.put("/fhir/ServiceRequest/sr-food-2001", json=bad, headers=as_org(HOSPITAL))
    assert response.status_code == 422
    expressions = {e for issue in response.json()["issue"] for e in issue["expression"]}
    assert {"ServiceRequest.code", "ServiceRequest.category[0]"} <= expressions


def test_profile__procedure_completed_needs_performed(client: TestClient) -> None:
    create_referral(client)
    body = procedure()
    del body["performedDateTime"]
    response = client.put("/fhir/Procedure/proc-1", json=body, headers=as_org(CBO))
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Procedure.performed[x]"]


def test_profile__consent_needs_disclosure_category_and_source(client: TestClient) -> None:
    seed_network(client)
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"code": "59284-0", "system": "http://loinc.org"}]}],
        "patient": {"reference": "Patient/pat-1001"},
    }
    response = client.post("/fhir/Consent", json=consent, headers=as_org(HOSPITAL))
    assert response.status_code == 422
    expressions = {e for issue in response.json()["issue"] for e in issue["expression"]}
    assert {
        "Consent.category",
        "Consent.dateTime",
        "Consent.organization",
        "Consent.source[x]",
        "Consent.policy",
    } <= expressions
