"""Who calls the CBO API: an organization's API key, or a SMART token for the API audience.

Both arrive as ``Authorization: Bearer …``; a key acts only for its organization, a token for
its client's (never for anything the request says).
"""

from collections.abc import Awaitable, Callable

from sqlalchemy import Engine
from starlette.requests import Request

from conformance.access import AccessContext
from conformance.errors import Unauthenticated
from gateway.partners.api_keys import is_api_key, organization_for_key

SmartAuthenticate = Callable[[Request], Awaitable[AccessContext]]


def cbo_authenticator(engine: Engine, smart: SmartAuthenticate) -> SmartAuthenticate:
    async def authenticate(request: Request) -> AccessContext:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and is_api_key(credential):
            found = organization_for_key(engine, credential)
            if found is None:
                raise Unauthenticated(
                    "The API key is unknown or revoked",
                    headers={"WWW-Authenticate": 'Bearer realm="loopgate", error="invalid_token"'},
                )
            key_id, organization = found
            # the key's id, never the key, names the caller in Provenance and logs
            return AccessContext(organization=organization, client_id=f"api-key:{key_id}")
        return await smart(request)

    return authenticate
