"""How a benchmark request says who it is: the ONE place to change when authentication changes.

Loopgate authenticates FHIR calls with SMART bearer tokens. ``credentials`` mints one access
token per organization (scope ``system/*.cruds``, one hour) straight into smart_auth's token
store, as the token endpoint would after a Backend Services client-credentials grant, and
returns the headers each request of that organization carries. The server then validates every
request exactly as in production; only obtaining the token (the JWT client assertion at
``/token``) is skipped, since it is done once per client, not per request.
"""

from collections.abc import Iterable

from sqlalchemy import Engine

SERVER_ENV: dict[str, str] = {}
"""Environment the server under test needs for this scheme (none for SMART tokens)."""
CLIENT_ID = "loopgate-bench"
SCOPE = "system/*.cruds"


def credentials(
    engine: Engine, *, audience: str, organizations: Iterable[str]
) -> dict[str, dict[str, str]]:
    """Request headers per organization (``Organization/<id>``) for the server at ``audience``
    (its FHIR base URL), tokens issued into the database behind ``engine``."""
    from smart_auth.db import now, writing
    from smart_auth.tokens import NewToken, issue, new_family_id

    headers = {}
    with writing(engine) as connection:
        for organization in organizations:
            token = NewToken(
                grant_type="client_credentials",
                client_id=CLIENT_ID,
                scope=SCOPE,
                aud=audience,
                family_id=new_family_id(),
                expires_in=3600,
                organization=organization,
            )
            issued = issue(connection, token, at=now())
            headers[organization] = {"Authorization": f"Bearer {issued.access_token}"}
    return headers
