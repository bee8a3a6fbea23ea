"""The ``/api/v1`` sub-application: the CBO JSON API with its own OpenAPI document and
problem-details errors (https://www.rfc-editor.org/rfc/rfc9457)."""

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from adapters.cbo import CboCore, cbo_router, problem_from_error
from adapters.cbo.problems import PROBLEM_MEDIA_TYPE
from conformance.errors import (
    BadRequest,
    GatewayError,
    Issue,
    MethodNotAllowed,
    ResourceNotFound,
)
from gateway import __version__
from gateway.partners.authentication import SmartAuthenticate

log = logging.getLogger("loopgate.errors")

DESCRIPTION = """\
The JSON API for community organizations: see your referrals, accept or decline them, say how
it went, talk with the referrer, and tell Loopgate your capacity — without FHIR. Every action is
checked by the same referral workflow the hospitals' FHIR API uses.

Authenticate with `Authorization: Bearer <API key>` (keys come from `loopgate api-key create`
or `POST /api/v1/api-keys`) or a SMART Backend Services token issued for this API's audience.
Errors are `application/problem+json` with a stable `type` per kind of error. Every POST that
changes something takes an `Idempotency-Key` header: retrying with the same key replays the first
answer.

Live updates: `GET /api/v1/events` streams your organization's referral events as Server-Sent
Events (not in this document: an endless response; see the README), and
`POST /api/v1/events/tickets` gives a browser's EventSource a one-time address of that stream.
"""


def cbo_app(
    *,
    core: CboCore,
    authenticate: SmartAuthenticate,
    api_base: str,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    app = FastAPI(
        title="Loopgate community organization API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.include_router(cbo_router(core, authenticate))
    for router in routers:
        app.include_router(router)
    type_base = f"{api_base}/problems"

    def problem(request: Request, error: GatewayError) -> Response:
        body = problem_from_error(
            error,
            type_base=type_base,
            instance=_instance(request),
            request_id=getattr(request.state, "request_id", None),
        )
        return JSONResponse(
            body,
            status_code=error.status,
            headers=error.headers or None,
            media_type=PROBLEM_MEDIA_TYPE,
        )

    async def gateway_error(request: Request, error: GatewayError) -> Response:
        return problem(request, error)

    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        issues = [Issue(detail=_message(e), expression=(_pointer(e),)) for e in error.errors()]
        return problem(request, BadRequest("The request is malformed", issues=issues))

    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 405:
            # RFC 9110 §15.5.6: a 405 lists the methods the path takes (Starlette's Allow)
            return problem(
                request,
                MethodNotAllowed(
                    "This path does not take this method", headers=dict(error.headers or {})
                ),
            )
        if error.status_code == 404:
            return problem(request, ResourceNotFound("There is nothing at this address"))
        return problem(request, BadRequest("The request could not be handled"))

    async def unexpected(request: Request, error: Exception) -> Response:
        log.error(
            "unexpected %s (request-id=%s)\n%s",
            type(error).__name__,
            getattr(request.state, "request_id", None),
            "".join(traceback.format_tb(error.__traceback__)),
        )
        return problem(
            request,
            GatewayError("Loopgate could not complete the request; the error has been logged"),
        )

    app.add_exception_handler(GatewayError, gateway_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)
    app.openapi = lambda: _problem_media_types(app)  # type: ignore[method-assign]
    return app


def _instance(request: Request) -> str:
    """The path the problem is about; for a path that carries a secret (a stream ticket), its
    route template, so the secret is not echoed back."""
    route = request.scope.get("route")
    template = getattr(route, "path", "")
    if "{ticket}" in template:
        return f"{request.scope.get('root_path', '')}{template}"
    return request.url.path


def _message(error: Any) -> str:
    """Pydantic's message for a field, without the input value (it could be PHI)."""
    if error.get("type") == "extra_forbidden":
        return "Unknown field: the OpenAPI document lists the fields this object takes"
    return str(error.get("msg", "Invalid value")).split(", input_value=")[0][:200]


def _pointer(error: Any) -> str:
    """Where the error is; for a field we do not know, its parent (the name was the sender's
    and could be anything, PHI included)."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        loc = loc[:-1]
    return "/".join(str(part) for part in loc)


def _problem_media_types(app: FastAPI) -> dict[str, Any]:
    """FastAPI documents error bodies as application/json; they are problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if code.isdigit() and int(code) >= 400 and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    app.openapi_schema = schema
    return schema
