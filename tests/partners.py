"""Partners (community organizations on the JSON API) for tests: provisioned through the
provisioning file's ``partners`` key, as an operator would, with known API keys."""

from typing import Any

from fastapi.testclient import TestClient

from gateway.provisioning import apply_provisioning, parse_provisioning
from tests.builders import CBO, OTHER_CBO, network

CBO_KEY = "lgk_eastside-food-bank-test-key-0123456789abcdef"
OTHER_CBO_KEY = "lgk_northside-housing-test-key-0123456789abcdef"
API = "/api/v1"


def key_headers(key: str = CBO_KEY, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def provision_partners(
    client: TestClient, *partners: dict[str, Any], patient: dict[str, Any] | None = None
) -> None:
    """The sandbox network (with ``patient`` changes) plus the given partner entries
    (default: both CBOs with a key)."""
    entries = list(partners) or [
        {"organization": CBO, "api_keys": [CBO_KEY]},
        {"organization": OTHER_CBO, "api_keys": [OTHER_CBO_KEY]},
    ]
    resources = network()
    for resource in resources:
        if resource["resourceType"] == "Patient":
            resource.update(patient or {})
    document = {"resources": resources, "partners": entries}
    app: Any = client.app
    apply_provisioning(parse_provisioning(document), service=app.state.fhir)
