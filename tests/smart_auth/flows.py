"""Test helpers that act like a browser, an app and a backend client, over HTTP only."""

import base64
import hashlib
import secrets
import time
import uuid
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from fastapi.testclient import TestClient
from joserfc import jwt

from tests.smart_auth.conftest import APP_REDIRECT, FHIR_BASE, PASSWORD, TOKEN_URL

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"action": attributes.get("action", ""), "fields": {}, "options": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"][attributes.get("name", "")] = attributes.get("value", "")
        elif tag == "select" and self.forms:
            self._select = attributes.get("name")
        elif tag == "option" and self.forms and self._select:
            self.forms[-1]["options"].append(attributes.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def forms(html: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form_posting_to(html: str, action: str) -> dict[str, Any]:
    return next(form for form in forms(html) if form["action"] == action)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorize_params(**overrides: str | None) -> dict[str, str]:
    """A valid standalone authorization request of patient-app; None removes a parameter."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "patient-app",
        "redirect_uri": APP_REDIRECT,
        "scope": "launch/patient openid fhirUser patient/Task.rs",
        "state": secrets.token_urlsafe(16),
        "aud": FHIR_BASE,
        "code_challenge": pkce()[1],
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def sign_in(
    client: TestClient, page: httpx.Response, username: str = "clinician"
) -> httpx.Response:
    """Fill in the login form shown in ``page``; returns the login POST's response."""
    fields = form_posting_to(page.text, "/auth/login")["fields"]
    return client.post("/auth/login", data={**fields, "username": username, "password": PASSWORD})


def signed_in(client: TestClient, username: str = "clinician") -> None:
    page = client.get("/auth/login")
    assert sign_in(client, page, username).status_code == 303


def consent(
    client: TestClient,
    page: httpx.Response,
    *,
    decision: str = "approve",
    patient: str | None = None,
) -> httpx.Response:
    form = form_posting_to(page.text, "/auth/consent")
    fields = dict(form["fields"])
    if patient is not None:
        fields["patient"] = patient
    return client.post("/auth/consent", data={**fields, "decision": decision})


def authorize(
    client: TestClient, *, patient: str | None = "Patient/p1", **overrides: str | None
) -> tuple[str, str, dict[str, str]]:
    """Run authorize → (login) → consent; returns (code, verifier, params)."""
    verifier, challenge = pkce()
    params = authorize_params(code_challenge=challenge, **overrides)
    page = client.get("/auth/authorize", params=params)
    if 'action="/auth/login"' in page.text:
        assert sign_in(client, page).status_code == 303
        page = client.get("/auth/authorize", params=params)
    assert page.status_code == 200, page.text
    needs_picker = "<select" in page.text
    answer = consent(client, page, patient=patient if needs_picker else None)
    assert answer.status_code == 303, answer.text
    query = query_of(answer.headers["location"])
    assert query["state"] == params["state"]
    return query["code"], verifier, params


def redeem(
    client: TestClient,
    code: str,
    verifier: str | None,
    *,
    client_id: str = "patient-app",
    **extra: str,
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": APP_REDIRECT,
        "client_id": client_id,
        **extra,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return client.post("/auth/token", data=data)


def user_token(client: TestClient, **overrides: str | None) -> dict[str, Any]:
    code, verifier, _ = authorize(client, **overrides)
    response = redeem(client, code, verifier)
    assert response.status_code == 200, response.text
    return dict(response.json())


def assertion(
    key: Any,
    client_id: str,
    *,
    alg: str = "RS384",
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "iat": now,
        "jti": uuid.uuid4().hex,
    }
    body.update(claims)
    body = {name: value for name, value in body.items() if value is not None}
    protected = {"alg": alg, "kid": key.kid, "typ": "JWT", **(header or {})}
    return jwt.encode(protected, body, key, algorithms=[alg])


def backend_token(
    client: TestClient, signed: str, scope: str = "system/Task.rs", **extra: str
) -> httpx.Response:
    return client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
            **extra,
        },
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def authorize_url(**params: str) -> str:
    return "/auth/authorize?" + urlencode(params)
