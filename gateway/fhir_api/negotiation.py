"""Media types, request bodies and ``Prefer`` for the FHIR door (http://hl7.org/fhir/R4/http.html#mime-type).

JSON is served; XML is refused with 406 (response) or 415 (request body) until it is supported.
"""

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from conformance.errors import BadRequest, NotAcceptable, PayloadTooLarge, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
JSON_TYPES = {FHIR_JSON, "application/json", "application/json+fhir", "text/json"}
JSON_FORMATS = JSON_TYPES | {"json"}
XML_TYPES = {"application/fhir+xml", "application/xml", "application/xml+fhir", "text/xml", "xml"}
_WILDCARDS = {"*/*", "application/*"}
_FHIR_VERSIONS = {"4.0", "4.0.1"}


def check_acceptable(request: Request) -> None:
    """406 unless the client accepts JSON (``_format`` wins over ``Accept``)."""
    requested = request.query_params.get("_format")
    if requested is not None:
        kind = requested.split(";")[0].strip().lower()
        if kind not in JSON_FORMATS:
            raise NotAcceptable(_refusal(kind in XML_TYPES), expression=("_format",))
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    ranges = [_media_range(part) for part in accept.split(",") if part.strip()]
    if any(kind in JSON_TYPES | _WILDCARDS and ok for kind, ok in ranges):
        return
    raise NotAcceptable(_refusal(any(kind in XML_TYPES for kind, _ in ranges)))


def _media_range(part: str) -> tuple[str, bool]:
    """``(type, acceptable)`` for one Accept entry; q=0 and foreign fhirVersions are refusals."""
    pieces = [p.strip() for p in part.split(";")]
    kind, acceptable = pieces[0].lower(), True
    for param in pieces[1:]:
        name, _, value = param.partition("=")
        if name.strip() == "q" and value.strip() in ("0", "0.0", "0.00", "0.000"):
            acceptable = False
        if name.strip() == "fhirVersion" and value.strip() not in _FHIR_VERSIONS:
            acceptable = False
    return kind, acceptable


def _refusal(xml: bool) -> str:
    if xml:
        return "Loopgate serves FHIR JSON only for now; ask for application/fhir+json"
    return "Loopgate serves application/fhir+json (FHIR R4 4.0.1)"


async def read_json_body(request: Request, *, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object: 415 for non-JSON, 413 when too large, 400 if broken."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in JSON_TYPES:
        if content_type in XML_TYPES:
            raise UnsupportedMediaType(
                "Send FHIR JSON (application/fhir+json); XML is not supported yet"
            )
        raise UnsupportedMediaType("Send FHIR JSON with Content-Type: application/fhir+json")
    body = await read_limited(request, max_bytes=max_bytes)
    if not body.strip():
        raise BadRequest("The request body is empty; send a FHIR resource as JSON")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("The request body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise BadRequest("The request body must be a JSON object (a FHIR resource)")
    return parsed


async def read_limited(request: Request, *, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Preferences:
    """The ``Prefer`` header (RFC 7240) as FHIR uses it (http.html#ops, search.html#errors)."""

    return_: str = "representation"
    lenient: bool = False


def preferences(request: Request) -> Preferences:
    values: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for token in header.split(","):
            name, _, value = token.strip().partition("=")
            values[name.strip().lower()] = value.strip().strip('"')
    return_ = values.get("return", "representation")
    if return_ not in ("minimal", "representation", "OperationOutcome"):
        return_ = "representation"
    return Preferences(return_=return_, lenient=values.get("handling") == "lenient")
