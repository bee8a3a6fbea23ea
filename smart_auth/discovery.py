"""What we advertise: smart-configuration, OpenID metadata, CapabilityStatement security.

Spec: http://hl7.org/fhir/smart-app-launch/conformance.html. Every URL is absolute, and every
capability listed is implemented (and tested) here.
"""

from typing import Any

from smart_auth.jose import ASSERTION_ALGORITHMS, ID_TOKEN_ALGORITHM
from smart_auth.settings import SmartSettings

CAPABILITIES = (
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "context-banner",
    "context-style",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
)
SCOPES_SUPPORTED = (
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "system/*.rs",
    "system/*.cruds",
    "patient/*.read",
    "user/*.read",
    "system/*.read",
)
GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")
# SMART lists client_secret_basic, client_secret_post and private_key_jwt as the options; public
# clients ("none") are advertised by the client-public capability instead.
AUTH_METHODS = ("private_key_jwt", "client_secret_basic")


def smart_configuration(settings: SmartSettings) -> dict[str, Any]:
    return {
        "issuer": settings.issuer,
        "jwks_uri": settings.jwks_uri,
        "authorization_endpoint": settings.authorize_url,
        "token_endpoint": settings.token_url,
        "introspection_endpoint": settings.introspect_url,
        "revocation_endpoint": settings.revoke_url,
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": list(CAPABILITIES),
    }


def openid_configuration(settings: SmartSettings) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 §3 metadata at ``{issuer}/.well-known/openid-configuration``."""
    return {
        "issuer": settings.issuer,
        "jwks_uri": settings.jwks_uri,
        "authorization_endpoint": settings.authorize_url,
        "token_endpoint": settings.token_url,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALGORITHM],
        "scopes_supported": ["openid", "fhirUser"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }


def capability_security(settings: SmartSettings) -> dict[str, Any]:
    """``CapabilityStatement.rest.security`` (conformance.html, "CapabilityStatement")."""
    return {
        "cors": True,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "authorize", "valueUri": settings.authorize_url},
                    {"url": "token", "valueUri": settings.token_url},
                    {"url": "introspect", "valueUri": settings.introspect_url},
                    {"url": "revoke", "valueUri": settings.revoke_url},
                ],
            }
        ],
    }
