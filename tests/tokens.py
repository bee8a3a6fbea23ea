"""Access tokens for gateway tests, issued into smart_auth's own token store.

These are the rows the token endpoint writes, so every request in the gateway tests is
authenticated exactly as in production; how tokens are *obtained* (client credentials,
authorization code, refresh) is tested in tests/smart_auth.
"""

from sqlalchemy import Engine

from smart_auth.db import now, writing
from smart_auth.tokens import NewToken, issue, new_family_id
from tests.conftest import FHIR_BASE


def mint(
    engine: Engine,
    *,
    organization: str | None,
    scope: str = "system/*.cruds",
    roles: tuple[str, ...] = (),
    fhir_user: str | None = None,
    patient: str | None = None,
    client_id: str = "test-client",
    audience: str = FHIR_BASE,
    lifetime: int = 3600,
) -> str:
    token = NewToken(
        grant_type="client_credentials" if fhir_user is None else "authorization_code",
        client_id=client_id,
        scope=scope,
        aud=audience,
        family_id=new_family_id(),
        expires_in=lifetime,
        fhir_user=fhir_user,
        organization=organization,
        roles=roles,
        context={"patient": patient.removeprefix("Patient/")} if patient else {},
    )
    with writing(engine) as connection:
        return issue(connection, token, at=now()).access_token
