"""FHIR JSON responses with the headers http.html asks for: ETag, Last-Modified, Location."""

from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from conformance.errors import GatewayError
from conformance.fhir_time import from_epoch_us, to_epoch_us
from conformance.outcome import informational_outcome, outcome_from_error
from gateway.fhir import bundle_json
from gateway.store.resource_rows import StoredVersion

MEDIA_TYPE = "application/fhir+json; charset=utf-8"


def fhir_response(
    body: bytes | str, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(content=body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def json_response(
    resource: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return fhir_response(orjson.dumps(resource), status=status, headers=headers)


def version_headers(stored: StoredVersion) -> dict[str, str]:
    return {
        "ETag": bundle_json.etag(stored.version_id),
        "Last-Modified": http_date(stored.last_updated),
    }


def http_date(epoch_us: int) -> str:
    return format_datetime(from_epoch_us(epoch_us), usegmt=True)


def resource_response(
    stored: StoredVersion,
    *,
    fhir_base: str,
    status: int = 200,
    prefer_return: str = "representation",
    location: bool = False,
) -> Response:
    headers = version_headers(stored)
    if location:
        headers["Location"] = (
            f"{fhir_base}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        )
    if prefer_return == "minimal":
        return Response(status_code=status, headers=headers)
    if prefer_return == "OperationOutcome":
        text = f"{stored.resource_type}/{stored.id} is at version {stored.version_id}"
        return json_response(informational_outcome(text), status=status, headers=headers)
    return fhir_response(stored.body or "{}", status=status, headers=headers)


def not_modified(request: Request, stored: StoredVersion) -> bool:
    """Conditional read: If-None-Match on the ETag, else If-Modified-Since (http.html#cread)."""
    none_match = request.headers.get("if-none-match")
    if none_match is not None:
        tags = {tag.strip() for tag in none_match.split(",")}
        return bundle_json.etag(stored.version_id) in tags or "*" in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo is None:
        return False
    modified_second = stored.last_updated // 1_000_000
    return modified_second <= to_epoch_us(moment) // 1_000_000


def error_response(error: GatewayError, *, request_id: str | None) -> Response:
    outcome = outcome_from_error(error, request_id=request_id)
    return json_response(outcome, status=error.status, headers=error.headers or None)
