"""FHIR REST at /fhir: CRUD, versions, history, conditional requests, media types, bad input."""

from email.utils import format_datetime, parsedate_to_datetime

import pytest
from fastapi.testclient import TestClient

from tests.builders import ADMIN, CBO, FHIR_JSON, HOSPITAL, as_org, organization, seed_network
from tests.conftest import FHIR_BASE


def _patient(**extra: object) -> dict:
    return {"resourceType": "Patient", "name": [{"family": "Rivera", "given": ["Denise"]}], **extra}


def test_create__assigns_id_version_and_returns_location_and_etag(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", json=_patient(id="client-chosen"), headers=as_org(HOSPITAL)
    )
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen"  # http.html#create: the server assigns the id
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == f"{FHIR_BASE}/Patient/{body['id']}/_history/1"
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert parsedate_to_datetime(response.headers["last-modified"]).year >= 2025


def test_create__keeps_the_clients_json_and_meta_profile(client: TestClient) -> None:
    sent = _patient(
        meta={
            "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
            "versionId": "99",
            "lastUpdated": "2001-01-01T00:00:00Z",
        },
        birthDate="1986-03-14",
        gender="female",
    )
    created = client.post("/fhir/Patient", json=sent, headers=as_org(HOSPITAL)).json()
    read = client.get(f"/fhir/Patient/{created['id']}", headers=as_org(HOSPITAL)).json()
    assert read == created
    assert read["meta"]["profile"] == sent["meta"]["profile"]
    assert read["meta"]["versionId"] == "1"
    assert read["birthDate"] == "1986-03-14"
    assert read["name"] == sent["name"]


def test_create__awkward_characters_are_stored_served_and_searched_exactly(
    client: TestClient,
) -> None:
    """Quotes, backslashes, braces, commas and characters beyond ASCII, in the body and in its
    index rows (which travel to PostgreSQL as arrays, where each of these needs care)."""
    family = 'O\'Brien-"Zoë" {née, \\Å} 😀'
    system, value = "urn:x\\y", 'a"b,c{d}'
    sent = _patient(
        name=[{"family": family, "given": ["Ana,María", "}{"]}],
        identifier=[{"system": system, "value": value}],
    )
    created = client.post("/fhir/Patient", json=sent, headers=as_org(HOSPITAL))
    assert created.status_code == 201, created.text
    read = client.get(f"/fhir/Patient/{created.json()['id']}", headers=as_org(HOSPITAL))
    assert read.content == created.content
    assert read.json()["name"] == sent["name"]
    assert read.json()["identifier"] == sent["identifier"]
    for query in (  # search values escaped as search.html#escaping says
        {"family:exact": _escaped(family)},
        {"given": _escaped("Ana,María")},
        {"identifier": f"{_escaped(system)}|{_escaped(value)}"},
    ):
        found = client.get("/fhir/Patient", params=query, headers=as_org(HOSPITAL))
        assert found.status_code == 200, (query, found.text)
        assert [e["resource"]["id"] for e in found.json().get("entry", [])] == [
            created.json()["id"]
        ], query


def _escaped(value: str) -> str:
    for special in ("\\", ",", "|", "$"):
        value = value.replace(special, "\\" + special)
    return value


def test_read__unknown_id_is_404_operation_outcome(client: TestClient) -> None:
    response = client.get("/fhir/Patient/nope", headers=as_org(HOSPITAL))
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "not-found"


def test_update__creates_new_versions_and_vread_returns_each(client: TestClient) -> None:
    first = client.put(
        "/fhir/Organization/o1", json=organization("o1", "First name"), headers=as_org(HOSPITAL)
    )
    assert first.status_code == 201  # update as create
    second = client.put(
        "/fhir/Organization/o1", json=organization("o1", "Second name"), headers=as_org(HOSPITAL)
    )
    assert second.status_code == 200
    assert second.headers["etag"] == 'W/"2"'
    v1 = client.get("/fhir/Organization/o1/_history/1", headers=as_org(HOSPITAL))
    v2 = client.get("/fhir/Organization/o1/_history/2", headers=as_org(HOSPITAL))
    assert v1.json()["name"] == "First name"
    assert v2.json()["name"] == "Second name"
    assert (
        client.get("/fhir/Organization/o1/_history/3", headers=as_org(HOSPITAL)).status_code == 404
    )


def test_update__unchanged_content_keeps_the_version(client: TestClient) -> None:
    client.put("/fhir/Organization/o1", json=organization("o1", "Same"), headers=as_org(HOSPITAL))
    again = client.put(
        "/fhir/Organization/o1", json=organization("o1", "Same"), headers=as_org(HOSPITAL)
    )
    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == "1"


def test_update__if_match_stale_is_412_and_changes_nothing(client: TestClient) -> None:
    client.put("/fhir/Organization/o1", json=organization("o1", "v1"), headers=as_org(HOSPITAL))
    client.put("/fhir/Organization/o1", json=organization("o1", "v2"), headers=as_org(HOSPITAL))
    stale = client.put(
        "/fhir/Organization/o1",
        json=organization("o1", "lost"),
        headers=as_org(HOSPITAL, **{"If-Match": 'W/"1"'}),
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    current = client.put(
        "/fhir/Organization/o1",
        json=organization("o1", "v3"),
        headers=as_org(HOSPITAL, **{"If-Match": 'W/"2"'}),
    )
    assert current.status_code == 200
    assert client.get("/fhir/Organization/o1", headers=as_org(HOSPITAL)).json()["name"] == "v3"


def test_update__malformed_if_match_is_400(client: TestClient) -> None:
    client.put("/fhir/Organization/o1", json=organization("o1", "v1"), headers=as_org(HOSPITAL))
    response = client.put(
        "/fhir/Organization/o1",
        json=organization("o1", "v2"),
        headers=as_org(HOSPITAL, **{"If-Match": "yesterday"}),
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (organization("other", "x"), "id"),
        ({"resourceType": "Organization", "name": "no id"}, "id"),
        ({"resourceType": "Patient", "id": "o1"}, "resourceType"),
    ],
)
def test_update__body_must_match_the_url(client: TestClient, body: dict, problem: str) -> None:
    response = client.put("/fhir/Organization/o1", json=body, headers=as_org(HOSPITAL))
    assert response.status_code == 400
    assert problem in response.json()["issue"][0]["expression"][0]
    assert client.get("/fhir/Organization/o1", headers=as_org(HOSPITAL)).status_code == 404


def test_delete__then_read_is_410_and_history_keeps_every_version(client: TestClient) -> None:
    client.put("/fhir/Organization/o1", json=organization("o1", "v1"), headers=as_org(HOSPITAL))
    client.put("/fhir/Organization/o1", json=organization("o1", "v2"), headers=as_org(HOSPITAL))
    assert client.delete("/fhir/Organization/o1", headers=as_org(HOSPITAL)).status_code == 204
    gone = client.get("/fhir/Organization/o1", headers=as_org(HOSPITAL))
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert (
        client.get("/fhir/Organization/o1/_history/2", headers=as_org(HOSPITAL)).json()["name"]
        == "v2"
    )
    assert (
        client.get("/fhir/Organization/o1/_history/3", headers=as_org(HOSPITAL)).status_code == 410
    )
    history = client.get("/fhir/Organization/o1/_history", headers=as_org(HOSPITAL)).json()
    assert history["type"] == "history"
    assert history["total"] == 3
    methods = [e["request"]["method"] for e in history["entry"]]
    assert methods == ["DELETE", "PUT", "PUT"]  # newest first
    assert "resource" not in history["entry"][0]
    # deleting again is idempotent; a resource never stored is 404
    assert client.delete("/fhir/Organization/o1", headers=as_org(HOSPITAL)).status_code == 204
    assert client.delete("/fhir/Organization/never", headers=as_org(HOSPITAL)).status_code == 404


def test_delete__recreate_after_delete_continues_the_version_line(client: TestClient) -> None:
    client.put("/fhir/Organization/o1", json=organization("o1", "v1"), headers=as_org(HOSPITAL))
    client.delete("/fhir/Organization/o1", headers=as_org(HOSPITAL))
    again = client.put(
        "/fhir/Organization/o1", json=organization("o1", "back"), headers=as_org(HOSPITAL)
    )
    assert again.status_code == 201
    assert again.json()["meta"]["versionId"] == "3"


def test_delete__refused_while_another_resource_references_it(client: TestClient) -> None:
    seed_network(client)
    response = client.delete("/fhir/Organization/mercy-hospital", headers=as_org(HOSPITAL))
    assert response.status_code == 409
    assert "PractitionerRole" in response.json()["issue"][0]["details"]["text"]
    assert (
        client.get("/fhir/Organization/mercy-hospital", headers=as_org(HOSPITAL)).status_code == 200
    )


def test_history__type_and_system_level_with_since_and_paging(client: TestClient) -> None:
    published_at_start = client.get("/fhir/_history", headers=as_org(ADMIN)).json()["total"]
    for index in range(3):
        client.put(
            f"/fhir/Organization/o{index}",
            json=organization(f"o{index}", "x"),
            headers=as_org(HOSPITAL),
        )
    client.post("/fhir/Patient", json=_patient(), headers=as_org(HOSPITAL))
    type_history = client.get(
        "/fhir/Organization/_history?_count=2", headers=as_org(HOSPITAL)
    ).json()
    assert type_history["total"] == 3
    assert len(type_history["entry"]) == 2
    next_link = next(link["url"] for link in type_history["link"] if link["relation"] == "next")
    rest = client.get(next_link.removeprefix("http://127.0.0.1:8080"), headers=as_org(HOSPITAL))
    assert len(rest.json()["entry"]) == 1
    assert client.get("/fhir/_history", headers=as_org(HOSPITAL)).status_code == 403
    system = client.get("/fhir/_history", headers=as_org(ADMIN)).json()
    assert system["total"] == published_at_start + 4
    newest = system["entry"][0]["response"]["lastModified"]
    since = client.get("/fhir/_history", params={"_since": newest}, headers=as_org(ADMIN)).json()
    assert since["total"] == 1
    assert since["entry"][0]["resource"]["resourceType"] == "Patient"


def test_conditional_create__if_none_exist_creates_once(client: TestClient) -> None:
    patient = _patient(identifier=[{"system": "urn:mrn", "value": "42"}])
    headers = as_org(HOSPITAL, **{"If-None-Exist": "identifier=urn:mrn|42"})
    first = client.post("/fhir/Patient", json=patient, headers=headers)
    second = client.post("/fhir/Patient", json=patient, headers=headers)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert client.get("/fhir/Patient", headers=as_org(HOSPITAL)).json()["total"] == 1


def test_conditional_create__several_matches_is_412(client: TestClient) -> None:
    for _ in range(2):
        client.post(
            "/fhir/Patient",
            json=_patient(identifier=[{"system": "urn:mrn", "value": "7"}]),
            headers=as_org(HOSPITAL),
        )
    response = client.post(
        "/fhir/Patient",
        json=_patient(),
        headers=as_org(HOSPITAL, **{"If-None-Exist": "identifier=urn:mrn|7"}),
    )
    assert response.status_code == 412
    assert client.get("/fhir/Patient", headers=as_org(HOSPITAL)).json()["total"] == 2


def test_conditional_create__deleted_matches_and_other_systems_do_not_count(
    client: TestClient,
) -> None:
    """``identifier=|9`` means "9 with no system"; a deleted Patient is no match."""
    headers = as_org(HOSPITAL)
    client.post(
        "/fhir/Patient",
        json=_patient(identifier=[{"system": "urn:other", "value": "9"}]),
        headers=headers,
    )
    gone = client.post(
        "/fhir/Patient", json=_patient(identifier=[{"value": "9"}]), headers=headers
    ).json()
    assert client.delete(f"/fhir/Patient/{gone['id']}", headers=headers).status_code in (200, 204)
    conditional = as_org(HOSPITAL, **{"If-None-Exist": "identifier=|9"})
    created = client.post(
        "/fhir/Patient", json=_patient(identifier=[{"value": "9"}]), headers=conditional
    )
    assert created.status_code == 201
    assert created.json()["id"] != gone["id"]
    again = client.post(
        "/fhir/Patient", json=_patient(identifier=[{"value": "9"}]), headers=conditional
    )
    assert again.status_code == 200
    assert again.json()["id"] == created.json()["id"]


def test_conditional_read__if_none_match_and_if_modified_since_give_304(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=_patient(), headers=as_org(HOSPITAL))
    url = f"/fhir/Patient/{created.json()['id']}"
    unchanged = client.get(url, headers=as_org(HOSPITAL, **{"If-None-Match": 'W/"1"'}))
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    later = format_datetime(parsedate_to_datetime(created.headers["last-modified"]), usegmt=True)
    assert (
        client.get(url, headers=as_org(HOSPITAL, **{"If-Modified-Since": later})).status_code == 304
    )
    earlier = "Mon, 01 Jan 2024 00:00:00 GMT"
    assert (
        client.get(url, headers=as_org(HOSPITAL, **{"If-Modified-Since": earlier})).status_code
        == 200
    )


@pytest.mark.parametrize("prefer", ["return=minimal", "return=OperationOutcome"])
def test_create__prefer_return(client: TestClient, prefer: str) -> None:
    response = client.post(
        "/fhir/Patient", json=_patient(), headers=as_org(HOSPITAL, Prefer=prefer)
    )
    assert response.status_code == 201
    assert response.headers["location"]
    if prefer == "return=minimal":
        assert response.content == b""
    else:
        assert response.json()["resourceType"] == "OperationOutcome"


def test_metadata__is_open_and_describes_what_is_served(client: TestClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"Task", "ServiceRequest", "Procedure", "Patient", "AuditEvent"} <= set(resources)
    task = resources["Task"]
    assert task["versioning"] == "versioned-update"
    assert {"read", "vread", "create", "update", "delete", "search-type"} <= {
        i["code"] for i in task["interaction"]
    }
    assert {"owner", "status", "_lastUpdated", "focus", "output"} <= {
        p["name"] for p in task["searchParam"]
    }
    assert "Task:focus" in task["searchInclude"]
    provenance = {i["code"] for i in resources["Provenance"]["interaction"]}
    assert "create" not in provenance
    assert "read" in provenance
    interactions = {i["code"] for i in statement["rest"][0]["interaction"]}
    assert {"transaction", "batch"} <= interactions


# -- media types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json",
        "application/json",
        "*/*",
        "text/html,application/xhtml+xml,*/*;q=0.8",
    ],
)
def test_accept__json_kinds_are_served(client: TestClient, accept: str) -> None:
    assert client.get("/fhir/metadata", headers={"Accept": accept}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Accept": "application/fhir+xml"}, ""),
        ({}, "?_format=xml"),
        ({}, "?_format=application/fhir+xml"),
        ({"Accept": "application/fhir+json; fhirVersion=5.0"}, ""),
    ],
)
def test_accept__xml_and_other_versions_are_406_with_outcome(
    client: TestClient, headers: dict, query: str
) -> None:
    response = client.get(f"/fhir/metadata{query}", headers=headers)
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"


def test_format__json_overrides_an_xml_accept(client: TestClient) -> None:
    response = client.get("/fhir/metadata?_format=json", headers={"Accept": "application/xml"})
    assert response.status_code == 200


def test_content_type__xml_body_is_415_and_stores_nothing(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient",
        content=b"<Patient xmlns='http://hl7.org/fhir'/>",
        headers={**as_org(HOSPITAL), "Content-Type": "application/fhir+xml"},
    )
    assert response.status_code == 415
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Patient", headers=as_org(HOSPITAL)).json()["total"] == 0


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (b"", 400),
        (b'{"resourceType": "Task"}', 400),  # wrong type for the URL
        (b'{"resourceType": "Patient", "birthDate": "1986-13-45"}', 400),
        (b'{"resourceType": "Patient", "favouriteColour": "blue"}', 400),
        (b'{"resourceType": "Patient", "name": {"family": "Rivera"}}', 400),
    ],
)
def test_create__malformed_input_is_a_clear_400(
    client: TestClient, content: bytes, status: int
) -> None:
    response = client.post(
        "/fhir/Patient", content=content, headers={**as_org(HOSPITAL), "Content-Type": FHIR_JSON}
    )
    assert response.status_code == status
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert client.get("/fhir/Patient", headers=as_org(HOSPITAL)).json()["total"] == 0


def test_create__errors_do_not_echo_submitted_values(client: TestClient) -> None:
    phi = "Denise-Secret-Rivera-555-201-4477"
    response = client.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "name": [{"family": 5}],
            "nickname": phi,
            "telecom": [{"value": phi, "system": phi}],
        },
        headers=as_org(HOSPITAL),
    )
    assert response.status_code == 400
    assert phi not in response.text
    assert "Patient.nickname" in response.text  # says where, not what


def test_create__unknown_resource_type_is_404(client: TestClient) -> None:
    response = client.post(
        "/fhir/Spaceship", json={"resourceType": "Spaceship"}, headers=as_org(HOSPITAL)
    )
    assert response.status_code in (400, 404)
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Spaceship/1", headers=as_org(HOSPITAL)).status_code == 404


def test_create__oversized_body_is_413(client: TestClient) -> None:
    huge = _patient(
        text={
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">' + "x" * 300_000 + "</div>",
        }
    )
    response = client.post("/fhir/Patient", json=huge, headers=as_org(HOSPITAL))
    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"


def test_create__dangling_local_reference_is_422_and_external_ones_are_kept(
    client: TestClient,
) -> None:
    dangling = {"resourceType": "PractitionerRole", "organization": {"reference": "Organization/x"}}
    response = client.post("/fhir/PractitionerRole", json=dangling, headers=as_org(HOSPITAL))
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["PractitionerRole.organization.reference"]
    external = {
        "resourceType": "PractitionerRole",
        "organization": {"reference": "https://ehr.example.org/fhir/Organization/456"},
    }
    assert (
        client.post("/fhir/PractitionerRole", json=external, headers=as_org(HOSPITAL)).status_code
        == 201
    )


def test_update__a_newly_named_missing_target_is_422_and_kept_targets_still_count(
    client: TestClient,
) -> None:
    """An update checks the references its previous version did not name; the ones it keeps
    cannot have gone, since a referenced resource cannot be deleted."""
    headers = as_org(HOSPITAL)
    org = {"resourceType": "Organization", "id": "kept-org", "name": "Kept"}
    assert client.put("/fhir/Organization/kept-org", json=org, headers=headers).status_code == 201
    role = {
        "resourceType": "PractitionerRole",
        "id": "role-9",
        "organization": {"reference": "Organization/kept-org"},
    }
    assert (
        client.put("/fhir/PractitionerRole/role-9", json=role, headers=headers).status_code == 201
    )
    assert client.delete("/fhir/Organization/kept-org", headers=headers).status_code == 409
    renamed = {**role, "active": True}
    assert (
        client.put("/fhir/PractitionerRole/role-9", json=renamed, headers=headers).status_code
        == 200
    )
    dangling = {**renamed, "location": [{"reference": "Location/nowhere"}]}
    response = client.put("/fhir/PractitionerRole/role-9", json=dangling, headers=headers)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["PractitionerRole.location[0].reference"]
    current = client.get("/fhir/PractitionerRole/role-9", headers=headers).json()
    assert current["meta"]["versionId"] == "2"


@pytest.mark.parametrize(
    ("reference", "status"),
    [
        ("not a reference", 400),
        ("urn:uuid:0d7f1d4e-93a6-4d36-b1a8-4a4b5a1d9f10", 400),
        ("Encounter/1", 422),
    ],
)
def test_create__unusable_references_are_refused(
    client: TestClient, reference: str, status: int
) -> None:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": reference},
    }
    response = client.post("/fhir/Observation", json=body, headers=as_org(HOSPITAL))
    assert response.status_code == status
    assert response.json()["issue"][0]["expression"] == ["Observation.subject.reference"]


def test_writes__provenance_and_audit_records_are_read_only(client: TestClient) -> None:
    body = {
        "resourceType": "Provenance",
        "recorded": "2025-01-01T00:00:00Z",
        "target": [{"reference": "https://x.example/fhir/Task/1"}],
        "agent": [{"who": {"display": "me"}}],
    }
    response = client.post("/fhir/Provenance", json=body, headers=as_org(HOSPITAL))
    assert response.status_code == 405


def test_routes__unknown_paths_and_methods_answer_with_outcomes(client: TestClient) -> None:
    missing = client.get("/fhir/Patient/1/everything/else", headers=as_org(HOSPITAL))
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    patch = client.patch("/fhir/Patient/1", json=[], headers=as_org(HOSPITAL))
    assert patch.status_code == 405
    assert patch.json()["resourceType"] == "OperationOutcome"


def test_auth__calls_without_an_identity_are_401_with_outcome(client: TestClient) -> None:
    response = client.get("/fhir/Patient")
    assert response.status_code == 401
    assert response.json()["issue"][0]["code"] == "login"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/fhir/metadata").status_code == 200


def test_request_id__is_echoed_and_quoted_in_outcomes(client: TestClient) -> None:
    response = client.get(
        "/fhir/Patient/nope", headers=as_org(HOSPITAL, **{"X-Request-ID": "abc-123"})
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["issue"][0]["diagnostics"] == "request-id=abc-123"


def test_search__is_scoped_to_the_type_and_excludes_deleted(client: TestClient) -> None:
    client.put("/fhir/Organization/o1", json=organization("o1", "x"), headers=as_org(CBO))
    client.put("/fhir/Organization/o2", json=organization("o2", "y"), headers=as_org(CBO))
    client.delete("/fhir/Organization/o2", headers=as_org(CBO))
    bundle = client.get("/fhir/Organization", headers=as_org(CBO)).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["o1"]
