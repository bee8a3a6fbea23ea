"""Error handlers: every failure under ``/fhir`` answers with an OperationOutcome.

Exception text never reaches a response or a log line (it may quote PHI from a payload or a
SQL parameter); unexpected errors are logged by type and stack only, with the request id.
"""

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from conformance.errors import (
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    ResourceNotFound,
)
from gateway.fhir_api.responses import error_response

log = logging.getLogger("loopgate.errors")


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _gateway_error(request: Request, error: GatewayError) -> Response:
    return error_response(error, request_id=request_id_of(request))


async def _validation_error(request: Request, error: RequestValidationError) -> Response:
    return error_response(BadRequest("The request is malformed"), request_id=request_id_of(request))


async def _http_error(request: Request, error: HTTPException) -> Response:
    if error.status_code == 404:
        gateway_error: GatewayError = ResourceNotFound("There is nothing at this address")
    elif error.status_code == 405:
        gateway_error = MethodNotAllowed(
            "This method is not supported here", headers=dict(error.headers or {})
        )
    else:
        gateway_error = BadRequest("The request could not be handled")
    if not request.url.path.startswith("/fhir"):
        return JSONResponse(
            {"detail": gateway_error.detail},
            status_code=gateway_error.status,
            headers=gateway_error.headers or None,
        )
    return error_response(gateway_error, request_id=request_id_of(request))


async def _unexpected(request: Request, error: Exception) -> Response:
    stack = "".join(traceback.format_tb(error.__traceback__))
    log.error(
        "unexpected %s (request-id=%s)\n%s", type(error).__name__, request_id_of(request), stack
    )
    return error_response(
        GatewayError("Loopgate could not complete the request; the error has been logged"),
        request_id=request_id_of(request),
    )
