"""SMART Backend Services: client_credentials with private_key_jwt, and every assertion attack.

reference/smart.md §5 rows 9–17; the client JWKS URL is the only thing faked (respx).
"""

import base64
import json
import time
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy import func, select

from gateway.store.engine import make_engine
from smart_auth.tables import jti_table
from tests.conftest import BASE_URL
from tests.smart_auth.conftest import (
    CBO,
    CBO_JWKS_URL,
    HOSPITAL,
    TOKEN_URL,
    build_app,
    public_jwks,
)
from tests.smart_auth.flows import ASSERTION_TYPE, assertion, backend_token, bearer


def _error(response: httpx.Response) -> str:
    return str(response.json()["error"])


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_client_credentials__token_carries_the_registered_organization(client, keys) -> None:
    response = backend_token(
        client, assertion(keys["hospital"], "hospital-ehr"), scope="system/Task.rs"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "system/Task.rs"
    assert 0 < body["expires_in"] <= 300
    assert "refresh_token" not in body  # smart.md §5 #10: never for backend clients
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert len(body["access_token"]) >= 43  # 256 bits, base64url
    me = client.get("/fhir/whoami", headers=bearer(body["access_token"])).json()
    assert me["organization"] == HOSPITAL
    assert me["client_id"] == "hospital-ehr"
    assert me["user"] is None
    assert me["patient"] is None
    assert me["grants"] == [["system", "Task", "rs", []]]


def test_client_credentials__es384_key(client, keys) -> None:
    signed = assertion(keys["ec"], "ec-system", alg="ES384")
    response = backend_token(client, signed, scope="system/Patient.rs system/Task.read")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/Patient.rs system/Task.read"  # v1 stays v1


def test_client_credentials__wildcard_registration_covers_narrower_request(client, keys) -> None:
    response = backend_token(client, assertion(keys["ec"], "ec-system", alg="ES384"), "system/*.r")
    assert response.json()["scope"] == "system/*.r"


def test_client_credentials__v1_star_equals_cruds(client, keys) -> None:
    response = backend_token(client, assertion(keys["hospital"], "hospital-ehr"), "system/Task.*")
    assert response.status_code == 200
    token = response.json()["access_token"]
    grants = client.get("/fhir/whoami", headers=bearer(token)).json()["grants"]
    assert grants == [["system", "Task", "cdrsu", []]]


def test_client_credentials__unregistered_scopes_are_dropped(client, keys) -> None:
    response = backend_token(
        client,
        assertion(keys["hospital"], "hospital-ehr"),
        scope="system/Task.rs system/Consent.rs patient/Task.rs openid",
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "system/Task.rs"


def test_client_credentials__escalation_with_nothing_grantable_is_invalid_scope(
    client, keys, jwks_server
) -> None:
    _serve_jwks(jwks_server, keys["cbo"])
    signed = assertion(keys["cbo"], "cbo-system")
    # cbo-system is registered for system/Task.rus: asking for more gets nothing
    response = backend_token(client, signed, scope="system/Task.cruds system/Patient.rs")
    assert response.status_code == 400
    assert _error(response) == "invalid_scope"


@pytest.mark.parametrize(
    "scope",
    [
        "system/Task.dus",  # out of order
        "system/Task.rx",  # unknown letter
        "system/Unicorn.rs",  # unknown resource type
        "*/*.read",  # unknown level
        "system/Task.read?status=requested",  # v1 with constraints
        "system/Task.rs?code:in=http://x",  # modifiers are experimental
        "system/Task.",
    ],
)
def test_client_credentials__malformed_scope_is_invalid_scope(client, keys, scope) -> None:
    response = backend_token(client, assertion(keys["hospital"], "hospital-ehr"), scope=scope)
    assert response.status_code == 400
    assert _error(response) == "invalid_scope"


def test_client_credentials__missing_scope_is_invalid_request(client, keys) -> None:
    response = backend_token(client, assertion(keys["hospital"], "hospital-ehr"), scope="")
    assert _error(response) == "invalid_request"


def test_client_credentials__api_audience_on_request(client, keys) -> None:
    signed = assertion(keys["hospital"], "hospital-ehr")
    response = backend_token(client, signed, resource=f"{BASE_URL}/api/v1")
    token = response.json()["access_token"]
    assert client.get("/api/v1/whoami", headers=bearer(token)).status_code == 200
    refused = client.get("/fhir/whoami", headers=bearer(token))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_client_credentials__unknown_audience_is_invalid_target(client, keys) -> None:
    signed = assertion(keys["hospital"], "hospital-ehr")
    response = backend_token(client, signed, resource="https://elsewhere.example/fhir")
    assert _error(response) == "invalid_target"


def test_client_credentials__public_and_symmetric_clients_cannot_use_it(client) -> None:
    public = client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Task.rs", "client_id": "x"},
    )
    assert _error(public) == "invalid_client"
    basic = client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Task.rs"},
        auth=("secret-app", "s3cret-s3cret-s3cret-s3cret-s3cret-0001"),
    )
    assert _error(basic) == "unauthorized_client"


def test_client_secret_is_never_accepted_for_backend_clients(client) -> None:
    response = client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Task.rs"},
        auth=("hospital-ehr", "anything-at-all"),
    )
    assert response.status_code == 401
    assert _error(response) == "invalid_client"


# --- assertion attacks (smart.md §5 #11–#15) ----------------------------------------------------


def test_assertion__alg_none_is_refused(client) -> None:
    now = int(time.time())
    claims = {"iss": "hospital-ehr", "sub": "hospital-ehr", "aud": TOKEN_URL, "exp": now + 60}
    unsigned = f"{_b64({'alg': 'none', 'kid': 'hospital-1'})}.{_b64({**claims, 'jti': 'x'})}."
    response = backend_token(client, unsigned)
    assert response.status_code == 400
    assert _error(response) == "invalid_client"


def test_assertion__hs256_signed_with_the_public_key_is_refused(client, keys) -> None:
    public = keys["hospital"].as_dict(private=False)
    secret = OctKey.import_key(json.dumps(public, sort_keys=True).encode())
    forged = assertion(secret, "hospital-ehr", alg="HS256", header={"kid": "hospital-1"})
    assert _error(backend_token(client, forged)) == "invalid_client"


def test_assertion__rs256_is_not_allow_listed(client, keys) -> None:
    signed = assertion(keys["hospital"], "hospital-ehr", alg="RS256")
    assert _error(backend_token(client, signed)) == "invalid_client"


def test_assertion__same_kid_signed_by_an_attacker_key_is_refused(client, keys) -> None:
    forged = assertion(keys["attacker"], "hospital-ehr")  # kid hospital-1, another key
    assert _error(backend_token(client, forged)) == "invalid_client"


def test_assertion__embedded_jwk_header_is_not_trusted(client, keys) -> None:
    attacker = keys["attacker"]
    forged = assertion(
        attacker, "hospital-ehr", header={"jwk": dict(attacker.as_dict(private=False))}
    )
    assert _error(backend_token(client, forged)) == "invalid_client"


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 120},  # expired
        {"exp": int(time.time()) + 3600},  # far future (> 5 min)
        {"iat": int(time.time()) + 600},  # issued in the future
        {"nbf": int(time.time()) + 600},
        {"aud": "https://elsewhere.example/token"},
        {"aud": BASE_URL},
        {"iss": "cbo-system"},  # iss != sub
        {"sub": "cbo-system"},
        {"jti": None},
        {"exp": None},
        {"jti": "x" * 300},
    ],
)
def test_assertion__bad_claims_are_invalid_client(client, keys, jwks_server, claims) -> None:
    _serve_jwks(jwks_server, keys["cbo"])
    signed = assertion(keys["hospital"], "hospital-ehr", **claims)
    response = backend_token(client, signed)
    assert response.status_code == 400
    assert _error(response) == "invalid_client"


def test_assertion__iss_of_another_client_is_refused(client, keys) -> None:
    # signed by the hospital's key but claiming to be the EC backend client
    signed = assertion(keys["hospital"], "ec-system")
    assert _error(backend_token(client, signed)) == "invalid_client"


def test_assertion__unknown_client_is_refused(client, keys) -> None:
    assert _error(backend_token(client, assertion(keys["hospital"], "nobody"))) == "invalid_client"


def test_assertion__wrong_assertion_type_is_refused(client, keys) -> None:
    signed = assertion(keys["hospital"], "hospital-ehr")
    response = backend_token(client, signed, client_assertion_type="urn:example:other")
    assert _error(response) == "invalid_client"


def test_assertion__kid_with_the_wrong_key_type_is_refused(client, keys) -> None:
    # ES384 header naming the RSA key's kid: no EC key has that kid
    ec = keys["ec"]
    signed = assertion(ec, "hospital-ehr", alg="ES384", header={"kid": "hospital-1"})
    assert _error(backend_token(client, signed)) == "invalid_client"


def test_assertion__missing_kid_is_refused(client, keys) -> None:
    key = keys["hospital"]
    now = int(time.time())
    claims = {
        "iss": "hospital-ehr",
        "sub": "hospital-ehr",
        "aud": TOKEN_URL,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    signed = jws.serialize_compact({"alg": "RS384"}, json.dumps(claims), key, algorithms=["RS384"])
    assert _error(backend_token(client, signed)) == "invalid_client"


def test_assertion__replayed_jti_is_refused(client, keys) -> None:
    signed = assertion(keys["hospital"], "hospital-ehr")
    assert backend_token(client, signed).status_code == 200
    replay = backend_token(client, signed)
    assert replay.status_code == 400
    assert _error(replay) == "invalid_client"


def test_assertion__replayed_jti_is_refused_by_another_instance_on_the_same_database(
    client, keys, database_url, jwks_server, patients
) -> None:
    """Two Loopgate processes share one database: the second sees the first's jti."""
    other_engine = make_engine(database_url)
    try:
        other_app, _ = build_app(other_engine, jwks_server, patients)
        with TestClient(other_app, base_url=BASE_URL) as other:
            signed = assertion(keys["hospital"], "hospital-ehr")
            assert backend_token(client, signed).status_code == 200
            replay = backend_token(other, signed)
            assert replay.status_code == 400
            assert _error(replay) == "invalid_client"
            fresh = backend_token(other, assertion(keys["hospital"], "hospital-ehr"))
            assert fresh.status_code == 200
    finally:
        other_engine.dispose()


def test_assertion__unsigned_junk_does_not_record_jtis(client, keys, engine) -> None:
    for _ in range(5):
        backend_token(client, assertion(keys["attacker"], "hospital-ehr"))
        backend_token(
            client, assertion(keys["hospital"], "hospital-ehr", exp=int(time.time()) + 9999)
        )
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(jti_table)).scalar() == 0


def test_assertion__one_megabyte_is_refused_as_too_large(client) -> None:
    response = client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Task.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": "a" * (1024 * 1024),
        },
    )
    assert response.status_code == 413
    assert _error(response) == "invalid_request"


# --- client JWKS by URL (smart.md §5 #12, #16) -----------------------------------------------


def _serve_jwks(jwks_server, *keys, cache_control: str | None = "max-age=60"):
    headers = {"Cache-Control": cache_control} if cache_control else {}
    return jwks_server.get(CBO_JWKS_URL).mock(
        return_value=httpx.Response(200, json=public_jwks(*keys), headers=headers)
    )


def test_jwks_uri__fetched_and_cached_per_cache_control(client, keys, jwks_server) -> None:
    route = _serve_jwks(jwks_server, keys["cbo"])
    for _ in range(2):
        response = backend_token(client, assertion(keys["cbo"], "cbo-system"))
        assert response.status_code == 200, response.text
    assert route.call_count == 1
    token = response.json()["access_token"]
    assert client.get("/fhir/whoami", headers=bearer(token)).json()["organization"] == CBO


def test_jwks_uri__no_store_is_fetched_every_time(client, keys, jwks_server) -> None:
    route = _serve_jwks(jwks_server, keys["cbo"], cache_control="no-store")
    for _ in range(2):
        assert backend_token(client, assertion(keys["cbo"], "cbo-system")).status_code == 200
    assert route.call_count == 2


def test_jwks_uri__unknown_kid_refetches_once(client, keys, jwks_server) -> None:
    route = _serve_jwks(jwks_server, keys["cbo"])
    assert backend_token(client, assertion(keys["cbo"], "cbo-system")).status_code == 200
    # the client rotates to a new key: the cached JWKS lacks it, so it is fetched again once
    route.mock(return_value=httpx.Response(200, json=public_jwks(keys["cbo"], keys["cbo-next"])))
    assert backend_token(client, assertion(keys["cbo-next"], "cbo-system")).status_code == 200
    assert route.call_count == 2
    unknown = RSAKey.generate_key(2048, parameters={"kid": "cbo-9"}, private=True)
    assert _error(backend_token(client, assertion(unknown, "cbo-system"))) == "invalid_client"
    assert route.call_count == 3  # exactly one refetch for the unknown kid


def test_jwks_uri__duplicate_kid_is_refused(client, keys, jwks_server) -> None:
    twin = RSAKey.generate_key(2048, parameters={"kid": "cbo-1"}, private=True)
    _serve_jwks(jwks_server, keys["cbo"], twin)
    assert _error(backend_token(client, assertion(keys["cbo"], "cbo-system"))) == "invalid_client"


def test_jwks_uri__unregistered_jku_is_refused_without_fetching(client, keys, jwks_server) -> None:
    evil = jwks_server.get("https://evil.example/jwks.json").mock(
        return_value=httpx.Response(200, json=public_jwks(keys["attacker"]))
    )
    registered = _serve_jwks(jwks_server, keys["cbo"])
    signed = assertion(keys["cbo"], "cbo-system", header={"jku": "https://evil.example/jwks.json"})
    assert _error(backend_token(client, signed)) == "invalid_client"
    assert evil.call_count == 0
    assert registered.call_count == 0


def test_jwks_uri__registered_jku_is_accepted(client, keys, jwks_server) -> None:
    _serve_jwks(jwks_server, keys["cbo"])
    signed = assertion(keys["cbo"], "cbo-system", header={"jku": CBO_JWKS_URL})
    assert backend_token(client, signed).status_code == 200


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(302, headers={"Location": "https://evil.example/jwks.json"}),
        httpx.Response(500),
        httpx.Response(200, content=b"{" + b" " * (70 * 1024) + b"}"),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"no": "keys"}),
    ],
)
def test_jwks_uri__bad_answers_are_invalid_client(client, keys, jwks_server, answer) -> None:
    jwks_server.get(CBO_JWKS_URL).mock(return_value=answer)
    evil = jwks_server.get("https://evil.example/jwks.json").mock(
        return_value=httpx.Response(200, json=public_jwks(keys["cbo"]))
    )
    assert _error(backend_token(client, assertion(keys["cbo"], "cbo-system"))) == "invalid_client"
    assert evil.call_count == 0  # redirects are not followed


def test_jwks_uri__timeout_is_invalid_client(client, keys, jwks_server) -> None:
    jwks_server.get(CBO_JWKS_URL).mock(side_effect=httpx.ConnectTimeout("slow"))
    assert _error(backend_token(client, assertion(keys["cbo"], "cbo-system"))) == "invalid_client"
