"""Machine-facing endpoints: discovery, JWKS, token, introspection, revocation, style.

Token responses and errors carry ``Cache-Control: no-store`` and ``Pragma: no-cache`` (SMART
app-launch.html, RFC 6749 §5.1). Browser apps may call token and revoke from the origins of
their registered redirect URIs (SMART: CORS for the client's registered origins).
"""

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from sqlalchemy import Engine, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from smart_auth.client_auth import AuthenticatedClient, ClientAuthenticator
from smart_auth.db import reading
from smart_auth.discovery import openid_configuration, smart_configuration
from smart_auth.forms import read_form
from smart_auth.grants import TokenGrants
from smart_auth.introspection import TokenInspector, introspection_response, unauthorized
from smart_auth.oauth import NO_STORE, InvalidRequest, OAuthError, UnsupportedGrantType
from smart_auth.oauth import error_response as oauth_error_response
from smart_auth.purge import Purger
from smart_auth.settings import SmartSettings
from smart_auth.signing_keys import published_jwks
from smart_auth.tables import client_table

PUBLIC_DOCUMENT = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"}
STYLE = {
    "color_background": "#f6f8fa",
    "color_error": "#aa0000",
    "color_highlight": "#1f6feb",
    "color_modal_backdrop": "",
    "color_success": "#1a7f37",
    "color_text": "#1f2328",
    "dim_border_radius": "6px",
    "dim_font_size": "16px",
    "dim_spacing_size": "16px",
    "font_family_body": "system-ui, sans-serif",
    "font_family_heading": "system-ui, sans-serif",
}
"""SMART "Styling" (scopes-and-launch-context.html#styling): Loopgate's look, for apps to match."""

Grant = Callable[[AuthenticatedClient, dict[str, str]], Awaitable[dict[str, Any]]]


def discovery_router(settings: SmartSettings) -> APIRouter:
    """The one SMART route under the FHIR base: ``/fhir/.well-known/smart-configuration``
    (https://hl7.org/fhir/smart-app-launch/conformance.html#using-well-known)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/fhir/.well-known/smart-configuration")
    async def smart_configuration_document() -> Response:
        return JSONResponse(smart_configuration(settings), headers=PUBLIC_DOCUMENT)

    return router


def machine_router(
    *,
    settings: SmartSettings,
    engine: Engine,
    authenticator: ClientAuthenticator,
    grants: TokenGrants,
    inspector: TokenInspector,
    purger: Purger,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    handlers: dict[str, Grant] = {
        "authorization_code": grants.authorization_code,
        "refresh_token": grants.refresh_token,
        "client_credentials": grants.client_credentials,
    }

    def with_cors(request: Request, response: Response) -> Response:
        origin = request.headers.get("origin")
        if origin and origin in _registered_origins(engine):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    @router.get("/.well-known/openid-configuration")
    async def openid_configuration_document() -> Response:
        return JSONResponse(openid_configuration(settings), headers=PUBLIC_DOCUMENT)

    @router.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        with reading(engine) as connection:
            keys = published_jwks(connection)
        return JSONResponse(keys, headers=PUBLIC_DOCUMENT)

    @router.get("/auth/smart-style.json")
    async def style() -> Response:
        return JSONResponse(STYLE, headers=PUBLIC_DOCUMENT)

    @router.post("/auth/token")
    async def token(request: Request) -> Response:
        try:
            form = await read_form(request)
            grant_type = form.get("grant_type")
            if not grant_type:
                raise InvalidRequest(description="grant_type is required.")
            handler = handlers.get(grant_type)
            if handler is None:
                raise UnsupportedGrantType(grant_type[:64])
            caller = await authenticator.authenticate(form, request.headers)
            body = await handler(caller, form)
        except OAuthError as error:
            return with_cors(request, oauth_error_response(error))
        purger.maybe_purge()
        return with_cors(request, JSONResponse(body, headers=NO_STORE))

    @router.post("/auth/introspect")
    async def introspect(request: Request) -> Response:
        try:
            form = await read_form(request)
        except OAuthError as error:
            return oauth_error_response(error)
        if not await inspector.caller_may_introspect(request, form):
            return unauthorized()
        token = form.get("token")
        if not token:
            return oauth_error_response(InvalidRequest(description="token is required."))
        return introspection_response(inspector.introspect(token))

    @router.post("/auth/revoke")
    async def revoke(request: Request) -> Response:
        try:
            form = await read_form(request)
            caller = await authenticator.authenticate(form, request.headers)
            token = form.get("token")
            if not token:
                raise InvalidRequest(description="token is required.")
        except OAuthError as error:
            return with_cors(request, oauth_error_response(error))
        inspector.revoke(caller.client.client_id, token)
        return with_cors(request, Response(status_code=200, headers=NO_STORE))

    @router.options("/auth/token")
    @router.options("/auth/revoke")
    async def preflight(request: Request) -> Response:
        response = Response(status_code=204)
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        return with_cors(request, response)

    return router


def _registered_origins(engine: Engine) -> set[str]:
    """Origins (scheme://host[:port]) of every app's registered redirect URIs."""
    with reading(engine) as connection:
        rows = connection.execute(
            select(client_table.c.redirect_uris).where(client_table.c.client_type != "backend")
        )
        origins = set()
        for row in rows:
            for uri in row.redirect_uris:
                parts = urlsplit(uri)
                origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins
