"""The authorization request: what is a 400 page, what goes back to the app, and what is asked.

reference/smart.md §5 rows 1, 2, 4, 6, 8, 9, 18, 22.
"""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from smart_auth import SmartSettings
from smart_auth.tables import launch_table
from tests.smart_auth.conftest import (
    APP_LAUNCH,
    APP_REDIRECT,
    FHIR_BASE,
    build_app,
    colleague,
    store_signing_key,
)
from tests.smart_auth.flows import (
    authorize_params,
    consent,
    form_posting_to,
    query_of,
    sign_in,
    signed_in,
)


def _no_redirect(response) -> None:
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        APP_REDIRECT + "/",
        APP_REDIRECT + "?x=1",
        "https://app.example/callback/../evil",
        "https://app.example@evil.example/callback",
        "https://evil.example/callback",
        "https://APP.example/callback",
        "http://app.example/callback",
        APP_REDIRECT + "#fragment",
    ],
)
def test_redirect_mismatch__is_a_400_page_never_a_redirect(client, redirect_uri) -> None:
    _no_redirect(client.get("/auth/authorize", params=authorize_params(redirect_uri=redirect_uri)))


@pytest.mark.parametrize("client_id", ["nobody", "hospital-ehr", None])
def test_unknown_or_backend_client__is_a_400_page(client, client_id) -> None:
    _no_redirect(client.get("/auth/authorize", params=authorize_params(client_id=client_id)))


def test_missing_redirect_uri__is_a_400_page(client) -> None:
    _no_redirect(client.get("/auth/authorize", params=authorize_params(redirect_uri=None)))


def test_bad_response_type__redirects_unsupported_response_type(client) -> None:
    params = authorize_params(response_type="token")
    response = client.get("/auth/authorize", params=params)
    assert response.status_code == 303
    assert response.headers["location"].startswith(APP_REDIRECT + "?")
    query = query_of(response.headers["location"])
    assert query["error"] == "unsupported_response_type"
    assert query["state"] == params["state"]
    assert query["iss"] == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"state": None}, "invalid_request"),
        ({"aud": None}, "invalid_request"),
        ({"aud": "https://evil.example/fhir"}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),  # defaults to plain: refused
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "patient/Task.dus"}, "invalid_scope"),
        ({"scope": "patient/Nonsense.rs"}, "invalid_scope"),
        ({"scope": "system/Task.rs"}, "invalid_scope"),  # nothing grantable for this app
        ({"scope": None}, "invalid_scope"),
        ({"launch": "whatever"}, "invalid_request"),  # launch without the launch scope
        ({"scope": "launch patient/Task.rs"}, "invalid_request"),  # launch scope, no launch
        ({"nonce": "n" * 600}, "invalid_request"),
    ],
)
def test_invalid_request__goes_back_to_the_app_with_state(client, overrides, error) -> None:
    params = authorize_params(**overrides)
    response = client.get("/auth/authorize", params=params)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(APP_REDIRECT + "?")
    query = query_of(location)
    assert query["error"] == error
    assert query.get("state") == params.get("state")
    assert "code" not in query


def test_duplicated_parameter__is_invalid_request(client) -> None:
    params = [*list(authorize_params().items()), ("scope", "patient/*.cruds")]
    response = client.get("/auth/authorize", params=params)
    assert query_of(response.headers["location"])["error"] == "invalid_request"


def test_resource_is_accepted_as_aud(client) -> None:
    response = client.get("/auth/authorize", params=authorize_params(aud=None, resource=FHIR_BASE))
    assert response.status_code == 200
    assert 'action="/auth/login"' in response.text


def test_without_session__shows_login_then_continues_to_consent(client) -> None:
    params = authorize_params()
    page = client.get("/auth/authorize", params=params)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    form = form_posting_to(page.text, "/auth/login")
    assert {"username", "password", "csrf", "next"} <= set(form["fields"])
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    answer = sign_in(client, page)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/auth/authorize?")
    consent_page = client.get(answer.headers["location"])
    assert "Allow access?" in consent_page.text
    assert "patient/Task.rs" in consent_page.text


def test_session_cookie__is_secure_when_served_over_https(
    engine, jwks_server, patients, signing_key
) -> None:
    base = "https://loopgate.example"
    settings = SmartSettings(public_url=base, fhir_base=f"{base}/fhir", api_base=f"{base}/api/v1")
    store_signing_key(engine, signing_key)
    app, _ = build_app(engine, jwks_server, patients, settings)
    with TestClient(app, base_url=base) as secure:
        cookie = secure.get("/auth/login").headers["set-cookie"].lower()
    assert "secure" in cookie
    assert "httponly" in cookie


def test_login__wrong_password_and_unknown_user_look_the_same(client) -> None:
    page = client.get("/auth/login")
    fields = form_posting_to(page.text, "/auth/login")["fields"]
    wrong = client.post("/auth/login", data={**fields, "username": "clinician", "password": "x"})
    unknown = client.post("/auth/login", data={**fields, "username": "ghost", "password": "x"})
    assert wrong.status_code == unknown.status_code == 200
    assert "wrong" in wrong.text
    assert "wrong" in unknown.text
    assert "set-cookie" not in wrong.headers or "loopgate_session" not in str(wrong.cookies)


def test_login__without_csrf_token_does_not_sign_in(client) -> None:
    client.get("/auth/login")
    response = client.post(
        "/auth/login", data={"username": "clinician", "password": "correct horse battery staple"}
    )
    assert response.status_code == 200
    assert 'action="/auth/login"' in response.text


def test_login__next_cannot_leave_loopgate(client) -> None:
    page = client.get("/auth/login", params={"next": "https://evil.example/"})
    assert form_posting_to(page.text, "/auth/login")["fields"]["next"] == "/auth/login"
    fields = form_posting_to(page.text, "/auth/login")["fields"]
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = client.post(
            "/auth/login",
            data={**fields, "next": target, "username": "clinician", "password": "wrong"},
        )
        assert response.status_code == 200


def test_login__rotates_the_session_cookie(client) -> None:
    page = client.get("/auth/login")
    before = client.cookies.get("loopgate_session")
    sign_in(client, page)
    assert client.cookies.get("loopgate_session") not in (None, before)


def test_consent__deny_redirects_access_denied(client) -> None:
    signed_in(client)
    params = authorize_params()
    page = client.get("/auth/authorize", params=params)
    answer = consent(client, page, decision="deny")
    query = query_of(answer.headers["location"])
    assert query["error"] == "access_denied"
    assert query["state"] == params["state"]


def test_consent__without_csrf_is_refused(client) -> None:
    signed_in(client)
    page = client.get("/auth/authorize", params=authorize_params())
    fields = dict(form_posting_to(page.text, "/auth/consent")["fields"])
    fields.pop("csrf")
    response = client.post("/auth/consent", data={**fields, "decision": "approve"})
    assert response.status_code == 403
    assert "location" not in response.headers


def test_consent__shows_only_the_scopes_that_will_be_granted(client) -> None:
    signed_in(client)
    params = authorize_params(scope="launch/patient patient/Task.rs system/Task.rs user/Consent.rs")
    page = client.get("/auth/authorize", params=params)
    assert "<code>patient/Task.rs</code>" in page.text
    assert "<code>system/Task.rs</code>" not in page.text
    assert "<code>user/Consent.rs</code>" not in page.text


def test_authorize_post__is_supported(client) -> None:
    signed_in(client)
    response = client.post("/auth/authorize", data=authorize_params())
    assert response.status_code == 200
    assert "Allow access?" in response.text


def test_picker__lists_only_the_users_organizations_patients_by_fhir_id(client) -> None:
    signed_in(client)
    page = client.get("/auth/authorize", params=authorize_params())
    options = form_posting_to(page.text, "/auth/consent")["options"]
    assert options == ["Patient/p1", "Patient/p2"]
    assert "Rivera, Denise" in page.text
    searched = client.get(
        "/auth/authorize", params={**authorize_params(), "patient_search": "okafor"}
    )
    assert form_posting_to(searched.text, "/auth/consent")["options"] == ["Patient/p2"]


@pytest.mark.parametrize("patient", ["Patient/nope", "Task/p1", "https://evil.example/Patient/p1"])
def test_picker__an_unknown_patient_is_refused(client, patient) -> None:
    signed_in(client)
    page = client.get("/auth/authorize", params=authorize_params())
    response = consent(client, page, patient=patient)
    assert response.status_code == 400
    assert "location" not in response.headers


# --- EHR launch handles (smart.md §5 #8) ------------------------------------------------------


def _launch(client, client_id: str = "patient-app", **query: str) -> str:
    response = client.get(f"/app/launch/{client_id}", params={"patient": "Patient/p1", **query})
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(APP_LAUNCH + "?")
    params = query_of(location)
    assert params["iss"] == FHIR_BASE
    return params["launch"]


def _ehr_params(launch: str, **overrides: str | None) -> dict[str, str]:
    return authorize_params(
        scope="launch openid fhirUser patient/Task.rs", launch=launch, **overrides
    )


def test_ehr_launch__without_session_shows_login_first_then_continues(client) -> None:
    page = client.get("/app/launch/patient-app", params={"patient": "Patient/p1"})
    assert page.status_code == 200
    assert 'action="/auth/login"' in page.text
    answer = sign_in(client, page)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/launch/patient-app?patient=Patient%2Fp1"
    launched = client.get(answer.headers["location"])
    assert launched.status_code == 303
    assert launched.headers["location"].startswith(APP_LAUNCH + "?iss=")


@pytest.mark.parametrize(
    "query",
    [
        {"patient": "Patient/nope"},
        {"patient": "Task/t1"},
        {"patient": "https://evil.example/fhir/Patient/p1"},
        {"patient": "Patient/p1", "encounter": "Patient/p1"},
        {"patient": "Patient/p1", "context": "Unicorn/u1"},
    ],
)
def test_ehr_launch__bad_context_is_refused(client, query) -> None:
    signed_in(client)
    response = client.get("/app/launch/patient-app", params=query)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_ehr_launch__client_without_launch_uri_is_refused(client) -> None:
    signed_in(client)
    assert client.get("/app/launch/keyed-app", params={"patient": "Patient/p1"}).status_code == 404
    assert client.get("/app/launch/hospital-ehr").status_code == 404


def test_ehr_launch__handle_for_another_client_is_refused(client) -> None:
    signed_in(client)
    launch = _launch(client, "secret-app")
    response = client.get("/auth/authorize", params=_ehr_params(launch))
    assert query_of(response.headers["location"])["error"] == "invalid_request"


def test_ehr_launch__expired_handle_is_refused(client, engine) -> None:
    signed_in(client)
    launch = _launch(client)
    with engine.begin() as connection:
        connection.execute(update(launch_table).values(expires_at=0))
    response = client.get("/auth/authorize", params=_ehr_params(launch))
    assert query_of(response.headers["location"])["error"] == "invalid_request"


def test_ehr_launch__handle_is_single_use(client) -> None:
    signed_in(client)
    launch = _launch(client)
    params = _ehr_params(launch)
    page = client.get("/auth/authorize", params=params)
    assert "Patient in context" in page.text
    assert "<select" not in page.text
    assert consent(client, page).status_code == 303
    again = client.get("/auth/authorize", params=_ehr_params(launch))
    assert query_of(again.headers["location"])["error"] == "invalid_request"
    # submitting the same consent form twice cannot mint a second code either
    second = consent(client, page)
    assert query_of(second.headers["location"])["error"] == "invalid_request"


def test_ehr_launch__another_user_cannot_use_the_handle(client, smart) -> None:
    smart.provision(users=[colleague()], clients=[])
    signed_in(client)
    launch = _launch(client)
    client.cookies.clear()
    signed_in(client, "colleague")
    response = client.get("/auth/authorize", params=_ehr_params(launch))
    assert query_of(response.headers["location"])["error"] == "invalid_request"


def test_logout__ends_the_session(client) -> None:
    signed_in(client)
    page = client.get("/auth/logout")
    fields = form_posting_to(page.text, "/auth/logout")["fields"]
    assert client.post("/auth/logout", data=fields).status_code == 200
    again = client.get("/auth/authorize", params=authorize_params())
    assert 'action="/auth/login"' in again.text
