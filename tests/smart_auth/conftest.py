"""A small app around SmartAuth: its router plus two protected routes that echo AccessContext.

Only the outside world is faked: client JWKS URLs are served by a respx router behind the
``httpx.AsyncClient`` SmartAuth is given. The patient directory is an in-memory implementation
of the ``PatientDirectory`` port.
"""

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from conformance.access import AccessContext
from conformance.errors import GatewayError
from smart_auth import PatientChoice, SmartAuth, SmartSettings
from tests.conftest import BASE_URL, store_signing_key

FHIR_BASE = f"{BASE_URL}/fhir"
API_BASE = f"{BASE_URL}/api/v1"
TOKEN_URL = f"{BASE_URL}/auth/token"
HOSPITAL = "Organization/mercy-hospital"
CBO = "Organization/eastside-food-bank"
APP_REDIRECT = "https://app.example/callback"
APP_LAUNCH = "https://app.example/launch"
CBO_JWKS_URL = "https://cbo.example/.well-known/jwks.json"
PASSWORD = "correct horse battery staple"
APP_SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret-0001"

SETTINGS = SmartSettings(public_url=BASE_URL, fhir_base=FHIR_BASE, api_base=API_BASE)


@dataclass
class MemoryPatients:
    """PatientDirectory over a dict: reference -> (organization, display)."""

    records: dict[str, tuple[str, str]] = field(default_factory=dict)

    def find_patients(
        self, *, organization: str | None, text: str | None, limit: int
    ) -> list[PatientChoice]:
        found = [
            PatientChoice(reference, display)
            for reference, (owner, display) in sorted(self.records.items())
            if owner == organization and (not text or text.lower() in display.lower())
        ]
        return found[:limit]

    def patient_exists(self, reference: str) -> bool:
        return reference in self.records


@pytest.fixture(scope="session")
def keys() -> dict[str, Any]:
    """Client signing keys, made once per run (RSA generation is the slow part)."""
    return {
        "hospital": RSAKey.generate_key(2048, parameters={"kid": "hospital-1"}, private=True),
        "cbo": RSAKey.generate_key(2048, parameters={"kid": "cbo-1"}, private=True),
        "cbo-next": RSAKey.generate_key(2048, parameters={"kid": "cbo-2"}, private=True),
        "ec": ECKey.generate_key("P-384", parameters={"kid": "ec-1"}, private=True),
        "app": RSAKey.generate_key(2048, parameters={"kid": "app-1"}, private=True),
        "attacker": RSAKey.generate_key(2048, parameters={"kid": "hospital-1"}, private=True),
    }


def public_jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [dict(key.as_dict(private=False)) for key in keys]}


def users() -> list[dict[str, Any]]:
    return [
        {
            "username": "clinician",
            "password": PASSWORD,
            "fhir_user": "Practitioner/pr-1",
            "organization": HOSPITAL,
            "roles": ["clinician"],
        },
    ]


def colleague() -> dict[str, Any]:
    """A second user of the hospital (provisioned only by the tests that need two people)."""
    return {
        "username": "colleague",
        "password": PASSWORD,
        "fhir_user": "Practitioner/pr-2",
        "organization": HOSPITAL,
        "roles": ["clinician"],
    }


def clients(keys: dict[str, Any]) -> list[dict[str, Any]]:
    app_scope = (
        "launch launch/patient openid fhirUser offline_access online_access "
        "patient/*.rs patient/Task.cruds user/Task.rs user/ServiceRequest.rs"
    )
    return [
        {
            "client_id": "hospital-ehr",
            "type": "backend",
            "jwks": public_jwks(keys["hospital"]),
            "scope": "system/Task.cruds system/ServiceRequest.cruds system/Patient.rs",
            "organization": HOSPITAL,
        },
        {
            "client_id": "cbo-system",
            "type": "backend",
            "jwks_uri": CBO_JWKS_URL,
            "scope": "system/Task.rus",
            "organization": CBO,
        },
        {
            "client_id": "ec-system",
            "type": "backend",
            "jwks": public_jwks(keys["ec"]),
            "scope": "system/*.rs",
            "organization": CBO,
        },
        {
            "client_id": "patient-app",
            "type": "public",
            "redirect_uris": [APP_REDIRECT],
            "launch_uri": APP_LAUNCH,
            "scope": app_scope,
        },
        {
            "client_id": "secret-app",
            "type": "confidential-symmetric",
            "client_secret": APP_SECRET,
            "redirect_uris": [APP_REDIRECT],
            "launch_uri": APP_LAUNCH,
            "scope": app_scope,
        },
        {
            "client_id": "keyed-app",
            "type": "confidential-asymmetric",
            "jwks": public_jwks(keys["app"]),
            "redirect_uris": [APP_REDIRECT],
            "scope": app_scope,
        },
    ]


@pytest.fixture
def jwks_server() -> respx.MockRouter:
    """The outside world: client JWKS URLs. Any unexpected outbound request fails the test."""
    return respx.MockRouter(assert_all_called=False, using=None)


@pytest.fixture
def patients() -> MemoryPatients:
    return MemoryPatients(
        {
            "Patient/p1": (HOSPITAL, "Rivera, Denise (1986-03-14)"),
            "Patient/p2": (HOSPITAL, "Okafor, James (1954-11-02)"),
            "Patient/p9": (CBO, "Elsewhere, Someone (2001-01-01)"),
        }
    )


def build_app(
    engine: Engine,
    jwks_server: respx.MockRouter,
    patients: MemoryPatients,
    settings: SmartSettings = SETTINGS,
) -> tuple[FastAPI, SmartAuth]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(jwks_server.async_handler))
    smart = SmartAuth(settings=settings, engine=engine, http=http, patients=patients)
    smart.ensure_keys()
    app = FastAPI()
    app.include_router(smart.discovery_router)
    app.include_router(smart.router)

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, error: GatewayError) -> Response:
        return JSONResponse(
            {"detail": error.detail}, status_code=error.status, headers=error.headers
        )

    @app.get("/fhir/whoami")
    async def fhir_whoami(request: Request) -> Response:
        return JSONResponse(echo(await smart.authenticate(request, audience=settings.fhir_base)))

    @app.get("/api/v1/whoami")
    async def api_whoami(request: Request) -> Response:
        return JSONResponse(echo(await smart.authenticate(request, audience=settings.api_base)))

    return app, smart


def echo(context: AccessContext) -> dict[str, Any]:
    return {
        "organization": context.organization,
        "user": context.user,
        "client_id": context.client_id,
        "patient": context.patient,
        "roles": sorted(context.roles),
        "grants": sorted(
            [g.level, g.resource_type, "".join(sorted(g.letters)), [list(c) for c in g.constraints]]
            for g in context.grants or ()
        ),
    }


@pytest.fixture
def smart_app(
    engine: Engine,
    jwks_server: respx.MockRouter,
    patients: MemoryPatients,
    keys: dict[str, Any],
    signing_key: dict[str, Any],
) -> tuple[FastAPI, SmartAuth]:
    store_signing_key(engine, signing_key)
    app, smart = build_app(engine, jwks_server, patients)
    smart.provision(users=users(), clients=clients(keys))
    return app, smart


@pytest.fixture
def smart(smart_app: tuple[FastAPI, SmartAuth]) -> SmartAuth:
    return smart_app[1]


@pytest.fixture
def client(smart_app: tuple[FastAPI, SmartAuth]) -> Iterator[TestClient]:
    with TestClient(smart_app[0], base_url=BASE_URL, follow_redirects=False) as test_client:
        yield test_client


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Live:
    base: str
    smart: SmartAuth


@pytest.fixture
def live(engine, jwks_server, patients, keys, signing_key) -> Iterator[Live]:
    """A real uvicorn server on a free loopback port, for published clients and the example."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = SmartSettings(public_url=base, fhir_base=f"{base}/fhir", api_base=f"{base}/api/v1")
    store_signing_key(engine, signing_key)
    app, smart = build_app(engine, jwks_server, patients, settings)
    smart.provision(users=users(), clients=clients(keys))

    @app.post("/fhir")
    async def transaction(request: Request) -> Response:
        """A stand-in FHIR base: checks the bearer token, answers 201 for every entry."""
        await smart.authenticate(request, audience=settings.fhir_base)
        bundle = await request.json()
        entries = [{"response": {"status": "201 Created"}} for _ in bundle["entry"]]
        return JSONResponse(
            {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        )

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the live server did not start"
        time.sleep(0.02)
    try:
        yield Live(base, smart)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
