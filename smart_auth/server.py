"""SmartAuth: the one object gateway builds, includes (``router``) and asks (``authenticate``)."""

from typing import Any

import httpx
from fastapi import APIRouter
from sqlalchemy import Engine
from starlette.requests import Request

from conformance.access import AccessContext
from smart_auth.bearer import access_context
from smart_auth.browser import browser_router
from smart_auth.client_auth import ClientAuthenticator
from smart_auth.client_jwks import ClientJwksCache
from smart_auth.discovery import capability_security
from smart_auth.grants import TokenGrants
from smart_auth.introspection import TokenInspector
from smart_auth.patients import PatientDirectory
from smart_auth.provisioning import apply
from smart_auth.purge import Purger
from smart_auth.routes import discovery_router, machine_router
from smart_auth.sessions import Sessions
from smart_auth.settings import SmartSettings
from smart_auth.signing_keys import ensure_signing_key


class SmartAuth:
    """Loopgate's SMART on FHIR authorization server.

    ``discovery_router`` serves ``/fhir/.well-known/smart-configuration``: include it before
    the FHIR routes, whose ``/fhir/{type}/{id}`` would otherwise match it. ``router`` serves
    the OpenID configuration, the JWKS, ``/auth/{authorize,consent,token,introspect,revoke,
    login,logout}`` and the EHR launch ``/app/launch/{client_id}``, none under ``/fhir``:
    include it after them, so that FHIR requests are not matched against its routes first.
    """

    def __init__(
        self,
        *,
        settings: SmartSettings,
        engine: Engine,
        http: httpx.AsyncClient,
        patients: PatientDirectory,
    ) -> None:
        self._settings = settings
        self._engine = engine
        authenticator = ClientAuthenticator(
            engine=engine, token_url=settings.token_url, jwks=ClientJwksCache(http)
        )
        purger = Purger(engine=engine, refresh_token_ttl=settings.refresh_token_ttl)
        self.discovery_router = discovery_router(settings)
        self.router = APIRouter()
        self.router.include_router(
            machine_router(
                settings=settings,
                engine=engine,
                authenticator=authenticator,
                grants=TokenGrants(engine=engine, settings=settings),
                inspector=TokenInspector(
                    engine=engine, settings=settings, authenticator=authenticator
                ),
                purger=purger,
            )
        )
        self.router.include_router(
            browser_router(
                settings=settings,
                engine=engine,
                sessions=Sessions(
                    engine=engine, ttl=settings.session_ttl, secure=settings.secure_cookies
                ),
                patients=patients,
                purger=purger,
            )
        )

    async def authenticate(self, request: Request, *, audience: str) -> AccessContext:
        """The caller of a protected route, from ``Authorization: Bearer``; or ``Unauthenticated``.

        ``audience`` is the base the route serves (``settings.fhir_base`` or ``api_base``): a
        token issued for the other one is refused.
        """
        return access_context(self._engine, request, audience=audience)

    def capability_security(self) -> dict[str, Any]:
        """The CapabilityStatement ``rest.security`` element for ``/fhir/metadata``."""
        return capability_security(self._settings)

    def provision(self, *, users: list[dict[str, Any]], clients: list[dict[str, Any]]) -> None:
        """Create or update users and clients; raises ``ProvisioningError`` naming the bad field."""
        apply(self._engine, users, clients)

    def ensure_keys(self) -> None:
        """Create our RS256 id_token signing key on first start (call at app start)."""
        ensure_signing_key(self._engine)
