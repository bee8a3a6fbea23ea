"""Property: malformed or random FHIR at the write endpoints never gets a 5xx and, when it is
refused, changes nothing that is stored."""

import copy
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from tests.builders import CBO, HOSPITAL, as_org, create_referral, procedure, service_request
from tests.gateway.test_bundles import referral_transaction

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "requested",
            "completed",
            "Patient/pat-1001",
            "urn:uuid:x",
            "Organization/ghost",
            "2025-13-40",
            "#contained",
            "received",
        ]
    ),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=8,
)
ELEMENT_NAMES = st.sampled_from(
    [
        "status",
        "intent",
        "code",
        "focus",
        "for",
        "owner",
        "requester",
        "output",
        "statusReason",
        "resourceType",
        "id",
        "meta",
        "authoredOn",
        "note",
        "subject",
        "category",
        "entry",
        "request",
        "reference",
        "coding",
        "system",
        "type",
        "valueReference",
        "basedOn",
    ]
) | st.text(min_size=1, max_size=10)


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*prefix, index))


def _parent(node: Any, path: tuple) -> Any:
    for step in path[:-1]:
        node = node[step]
    return node


@st.composite
def mutated(draw: st.DrawFn, original: dict) -> dict | list | Any:
    """A copy of ``original`` with one to three random structural mutations."""
    document: Any = copy.deepcopy(original)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = [p for p in _paths(document) if p]
        if not paths or not isinstance(document, dict):
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(document, path)
        action = draw(st.sampled_from(["replace", "delete", "add", "wrap"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(ELEMENT_NAMES)] = draw(JSON_VALUES)
        elif action == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
    return document


def _fingerprint(engine: Engine) -> str:
    """Everything stored: every version of every resource and every index row count."""
    digest = hashlib.sha256()
    with engine.connect() as connection:
        for table in (
            "resource",
            "resource_version",
            "search_token",
            "search_reference",
            "search_date",
            "search_string",
        ):
            digest.update(
                str(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()).encode()
            )
        rows = connection.execute(
            text(
                "SELECT resource_type, id, version_id, body FROM resource_version "
                "ORDER BY resource_type, id, version_id"
            )
        )
        for row in rows:
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


@pytest.fixture
def referral(client: TestClient) -> dict:
    return create_referral(client)


def _check(client: TestClient, engine: Engine, method: str, url: str, body: Any, org: str) -> None:
    before = _fingerprint(engine)
    content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    response = client.request(
        method,
        url,
        content=content,
        headers={**as_org(org), "Content-Type": "application/fhir+json"},
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"
        assert _fingerprint(engine) == before, f"refused {response.status_code} changed data"


_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(data=st.data())
def test_task_updates__random_mutations(
    client: TestClient, engine: Engine, referral: dict, data: st.DataObject
) -> None:
    body = data.draw(mutated({**referral, "status": "accepted"}))
    org = data.draw(st.sampled_from([CBO, HOSPITAL]))
    _check(client, engine, "PUT", "/fhir/Task/task-1", body, org)


@_SETTINGS
@given(data=st.data())
def test_creates__random_mutations(
    client: TestClient, engine: Engine, referral: dict, data: st.DataObject
) -> None:
    original = data.draw(st.sampled_from([service_request("sr-new"), procedure("proc-new")]))
    body = data.draw(mutated(original))
    resource_type = original["resourceType"]
    _check(client, engine, "POST", f"/fhir/{resource_type}", body, CBO)


@_SETTINGS
@given(data=st.data())
def test_transactions__random_mutations(
    client: TestClient, engine: Engine, referral: dict, data: st.DataObject
) -> None:
    body = data.draw(mutated(referral_transaction()))
    _check(client, engine, "POST", "/fhir", body, HOSPITAL)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=200) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_write_endpoints__random_bytes(
    client: TestClient, engine: Engine, referral: dict, body: bytes
) -> None:
    for method, url in (("POST", "/fhir"), ("POST", "/fhir/Task"), ("PUT", "/fhir/Task/task-1")):
        _check(client, engine, method, url, body, HOSPITAL)
