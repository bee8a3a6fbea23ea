"""The JSON Loopgate stores and serves: the client's resource with server-owned id and meta.

The client's validated JSON is kept as sent; only ``id``, ``meta.versionId`` and
``meta.lastUpdated`` are the server's (http://hl7.org/fhir/R4/resource.html#Meta).
"""

from typing import Any

import orjson

from conformance.fhir_time import format_instant

SERVER_META = ("versionId", "lastUpdated")


def stored_body(resource: dict[str, Any], *, resource_id: str, version_id: int, now: int) -> str:
    """The resource as it will be stored and served, as compact JSON text."""
    client_meta = resource.get("meta") or {}
    meta = {"versionId": str(version_id), "lastUpdated": format_instant(now)}
    meta.update((k, v) for k, v in client_meta.items() if k not in SERVER_META)
    body: dict[str, Any] = {
        "resourceType": resource["resourceType"],
        "id": resource_id,
        "meta": meta,
    }
    body.update((k, v) for k, v in resource.items() if k not in ("resourceType", "id", "meta"))
    return orjson.dumps(body).decode()


def content_of(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without server-owned fields, for "did anything change?" comparisons."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in SERVER_META}
    content = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    if meta:
        content["meta"] = meta
    return content
