"""Discovery documents, our JWKS, and the CapabilityStatement security block."""

from sqlalchemy import delete, select

from smart_auth.tables import signing_key_table
from tests.conftest import BASE_URL
from tests.smart_auth.conftest import FHIR_BASE


def test_smart_configuration__absolute_urls_and_promises(client) -> None:
    response = client.get(
        "/fhir/.well-known/smart-configuration", headers={"Accept": "application/fhir+json"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    config = response.json()
    assert config["issuer"] == BASE_URL
    for name in (
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ):
        assert config[name].startswith(BASE_URL + "/"), name
    assert config["token_endpoint"] == f"{BASE_URL}/auth/token"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["response_types_supported"] == ["code"]
    assert set(config["grant_types_supported"]) == {
        "authorization_code",
        "client_credentials",
        "refresh_token",
    }
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert {
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "sso-openid-connect",
        "context-ehr-patient",
        "context-standalone-patient",
        "context-banner",
        "context-style",
        "permission-offline",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
        "authorize-post",
    } <= set(config["capabilities"])


def test_jwks__bare_public_keys_that_match_the_stored_ones(client, engine) -> None:
    jwks = client.get("/.well-known/jwks.json").json()
    with engine.connect() as connection:
        kids = [row.kid for row in connection.execute(select(signing_key_table.c.kid))]
    assert [key["kid"] for key in jwks["keys"]] == kids
    for key in jwks["keys"]:
        assert key["kty"] == "RSA"
        assert key["alg"] == "RS256"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()


def test_ensure_keys__creates_one_key_once(smart, client, engine) -> None:
    with engine.begin() as connection:
        connection.execute(delete(signing_key_table))
    smart.ensure_keys()
    created = client.get("/.well-known/jwks.json").json()
    assert len(created["keys"]) == 1
    smart.ensure_keys()
    assert client.get("/.well-known/jwks.json").json() == created


def test_capability_security__names_the_same_endpoints(smart, client) -> None:
    security = smart.capability_security()
    config = client.get("/fhir/.well-known/smart-configuration").json()
    assert security["cors"] is True
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {item["url"]: item["valueUri"] for item in security["extension"][0]["extension"]}
    assert uris == {
        "authorize": config["authorization_endpoint"],
        "token": config["token_endpoint"],
        "introspect": config["introspection_endpoint"],
        "revoke": config["revocation_endpoint"],
    }


def test_style__is_public_json(client) -> None:
    response = client.get("/auth/smart-style.json")
    assert response.status_code == 200
    assert "color_background" in response.json()
    assert FHIR_BASE.startswith(BASE_URL)
