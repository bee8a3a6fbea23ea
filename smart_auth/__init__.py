"""SMART on FHIR: Loopgate's authorization server and the bearer-token check on every API call.

Gateway builds one ``SmartAuth`` from ``SmartSettings``, its engine, an ``httpx.AsyncClient``
(for client JWKS URLs) and a ``PatientDirectory``; includes ``SmartAuth.router``; calls
``ensure_keys()`` and ``provision(...)`` at start; and calls ``authenticate(request,
audience=...)`` on every protected route to get the caller's ``AccessContext``.
"""

from smart_auth.jose import generate_client_key, public_jwk
from smart_auth.patients import PatientChoice, PatientDirectory
from smart_auth.provisioning import ProvisioningError
from smart_auth.server import SmartAuth
from smart_auth.settings import SmartSettings

__all__ = [
    "PatientChoice",
    "PatientDirectory",
    "ProvisioningError",
    "SmartAuth",
    "SmartSettings",
    "generate_client_key",
    "public_jwk",
]
