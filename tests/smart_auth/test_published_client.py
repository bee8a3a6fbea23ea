"""The authorization-code flow driven by a published client library against a live server.

authlib's ``requests_client.OAuth2Session`` (PKCE S256, public client) builds the authorization
URL, redeems the code, refreshes and calls a protected route; ``requests`` plays the browser
through our login and consent forms. Nothing of ours runs on the client side.
"""

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.smart_auth.conftest import APP_REDIRECT, PASSWORD
from tests.smart_auth.flows import form_posting_to

SCOPE = "launch/patient openid fhirUser offline_access patient/Task.rs"


def test_authlib_oauth2_session__standalone_launch_with_pkce(live) -> None:
    live_base = live.base
    config = requests.get(f"{live_base}/fhir/.well-known/smart-configuration", timeout=5).json()
    verifier = generate_token(64)
    app = OAuth2Session(
        client_id="patient-app",
        redirect_uri=APP_REDIRECT,
        scope=SCOPE,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    url, state = app.create_authorization_url(
        config["authorization_endpoint"],
        code_verifier=verifier,
        aud=f"{live_base}/fhir",
        nonce="nonce-1",
    )

    browser = requests.Session()
    login_page = browser.get(url, timeout=5)
    login = form_posting_to(login_page.text, "/auth/login")["fields"]
    signed_in = browser.post(
        f"{live_base}/auth/login",
        data={**login, "username": "clinician", "password": PASSWORD},
        allow_redirects=False,
        timeout=5,
    )
    assert signed_in.status_code == 303
    consent_page = browser.get(live_base + signed_in.headers["location"], timeout=5)
    consent = form_posting_to(consent_page.text, "/auth/consent")
    assert consent["options"] == ["Patient/p1", "Patient/p2"]
    approved = browser.post(
        f"{live_base}/auth/consent",
        data={**consent["fields"], "patient": "Patient/p1", "decision": "approve"},
        allow_redirects=False,
        timeout=5,
    )
    callback = approved.headers["location"]
    assert callback.startswith(APP_REDIRECT + "?")

    token = app.fetch_token(
        config["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    assert token["patient"] == "p1"
    assert token["scope"] == SCOPE
    jwks = KeySet.import_key_set(requests.get(config["jwks_uri"], timeout=5).json())
    claims = jwt.decode(token["id_token"], jwks, algorithms=["RS256"]).claims
    assert claims["fhirUser"] == f"{live_base}/fhir/Practitioner/pr-1"
    assert claims["nonce"] == "nonce-1"

    me = app.get(f"{live_base}/fhir/whoami", timeout=5).json()
    assert me["patient"] == "Patient/p1"
    assert me["grants"] == [["patient", "Task", "rs", []]]

    first_refresh = token["refresh_token"]
    refreshed = app.refresh_token(config["token_endpoint"])
    assert refreshed["refresh_token"] != first_refresh
    assert app.get(f"{live_base}/fhir/whoami", timeout=5).status_code == 200
    assert state
