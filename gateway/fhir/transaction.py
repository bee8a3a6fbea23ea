"""``batch`` and ``transaction`` Bundles (http://hl7.org/fhir/R4/http.html#transaction).

A transaction is atomic: every entry is written in one database transaction, ``urn:uuid:``
fullUrls become the new ``Type/id`` everywhere they are referenced, entries run in the spec's
order (DELETE, POST, PUT, GET) and any failure rolls everything back. A batch runs each entry
on its own and reports each entry's outcome.
"""

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson

from conformance.access import AccessContext
from conformance.errors import (
    BadRequest,
    GatewayError,
    Issue,
    MethodNotAllowed,
)
from conformance.fhir_time import format_instant
from conformance.outcome import outcome_from_error
from conformance.profiles import check_profile
from conformance.references import is_valid_id, reference_strings, rewrite_references
from conformance.resource_types import RESOURCE_TYPES
from conformance.resources import validate_structure
from gateway.fhir import bundle_json
from gateway.fhir.ids import new_resource_id
from gateway.fhir.prepared_body import PreparedBody, prepare_body
from gateway.fhir.service import (
    FhirService,
    WriteResult,
    check_body_matches_url,
    require_type,
    require_writable,
)
from gateway.fhir.write_context import WriteContext, now_us
from gateway.store.engine import read_transaction
from gateway.store.resource_rows import StoredVersion

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}


@dataclass
class BundleEntry:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    version_id: str | None
    query: str | None
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: int | None
    profile_checked: bool = False
    """Its resource passed the profile checks with its references as they are now."""
    prepared: PreparedBody | None = None
    """``prepare_body`` of its resource with its references as they are now."""

    @property
    def root(self) -> str:
        return f"Bundle.entry[{self.index}]"


class BundleProcessor:
    def __init__(self, service: FhirService) -> None:
        self.service = service

    def process(
        self, actor: AccessContext, bundle: dict[str, Any], *, representation: bool
    ) -> dict[str, Any]:
        """The response Bundle; raises the failing entry's error for a transaction."""
        return self.prepare(actor, bundle, representation=representation)()

    def prepare(
        self, actor: AccessContext, bundle: dict[str, Any], *, representation: bool
    ) -> Callable[[], dict[str, Any]]:
        """``process``'s checks that need no database (the envelope, each entry's request and,
        for a transaction, each resource's structure), made now; returns the part that writes
        and answers (for ``FhirService.run_write``)."""
        kind = bundle.get("type")
        if kind not in ("transaction", "batch"):
            raise BadRequest(
                "POST to the base takes a Bundle of type transaction or batch",
                expression=("Bundle.type",),
            )
        validate_envelope(bundle)
        entries = [self._entry(i, raw) for i, raw in enumerate(bundle.get("entry") or [])]
        if kind == "transaction":
            _check_no_overlap(entries)
            for entry in entries:  # structure first, outside the database transaction
                if entry.resource is not None:
                    validate_structure(entry.resource, root=f"{entry.root}.resource")
            self._prepare_transaction(entries)

        def write() -> dict[str, Any]:
            if kind == "transaction":
                results = self._transaction(actor, entries, representation)
            else:
                results = [self._batch_entry(actor, entry, representation) for entry in entries]
            return {
                "resourceType": "Bundle",
                "id": str(uuid.uuid4()),
                "type": f"{kind}-response",
                "entry": results,
            }

        return write

    # -- parsing -----------------------------------------------------------------------------

    def _entry(self, index: int, raw: Any) -> BundleEntry:
        root = f"Bundle.entry[{index}]"
        request = raw.get("request") if isinstance(raw, dict) else None
        if not isinstance(request, dict):
            raise BadRequest("Each entry needs a request", expression=(f"{root}.request",))
        method, url = request.get("method"), request.get("url")
        if method not in _ORDER:
            if method == "PATCH":
                raise MethodNotAllowed(
                    "PATCH is not supported", expression=(f"{root}.request.method",)
                )
            raise BadRequest(
                "request.method must be GET, POST, PUT or DELETE",
                expression=(f"{root}.request.method",),
            )
        if not isinstance(url, str) or not url:
            raise BadRequest("request.url is required", expression=(f"{root}.request.url",))
        path, _, query = self._relative(url).partition("?")
        parts = [p for p in path.split("/") if p]
        resource = raw.get("resource")
        entry = BundleEntry(
            index=index,
            method=method,
            resource_type=parts[0] if parts else "",
            resource_id=None,
            version_id=None,
            query=query or None,
            resource=resource if isinstance(resource, dict) else None,
            full_url=raw.get("fullUrl"),
            if_none_exist=request.get("ifNoneExist"),
            if_match=_if_match(request.get("ifMatch"), root),
        )
        self._check_shape(entry, parts, root)
        return entry

    def _relative(self, url: str) -> str:
        base = self.service.fhir_base
        if url.startswith(base + "/"):
            return url[len(base) + 1 :]
        return url.lstrip("/")

    def _check_shape(self, entry: BundleEntry, parts: list[str], root: str) -> None:
        where = (f"{root}.request.url",)
        if not parts or parts[0] not in RESOURCE_TYPES:
            raise BadRequest(
                "request.url must start with a resource type Loopgate serves", expression=where
            )
        if len(parts) >= 2:
            entry.resource_id = parts[1]
            if not is_valid_id(parts[1]):
                raise BadRequest("request.url holds an invalid id", expression=where)
        if len(parts) == 4 and parts[2] == "_history":
            entry.version_id = parts[3]
        elif len(parts) > 2:
            raise BadRequest("request.url is not a form Loopgate supports", expression=where)
        expected_parts = {"POST": 1, "PUT": 2, "DELETE": 2}.get(entry.method)
        if expected_parts and (len(parts) != expected_parts or entry.query):
            raise BadRequest(
                f"{entry.method} entries take request.url "
                + ("'Type'" if entry.method == "POST" else "'Type/id'")
                + " (conditional updates and deletes are not supported)",
                expression=where,
            )
        if entry.method in ("POST", "PUT"):
            if entry.resource is None:
                raise BadRequest(
                    f"{entry.method} entries need a resource", expression=(f"{root}.resource",)
                )
            require_writable(entry.resource)
            if entry.resource.get("resourceType") != entry.resource_type:
                raise BadRequest(
                    "The entry's resource type does not match request.url",
                    expression=(f"{root}.resource.resourceType",),
                )

    # -- transaction -------------------------------------------------------------------------

    def _prepare_transaction(self, entries: list[BundleEntry]) -> None:
        """What needs no database, before the write queues: each POST gets an id, provisional
        while a conditional create may yet match a stored resource instead; fullUrls become
        those ids in every reference; and each resource that passes its profile checks and
        has acceptable references has its index values ready. A failure here is only noted:
        the write raises it in its usual order."""
        mapping: dict[str, str] = {}
        for entry in entries:
            if entry.method == "POST" and entry.resource is not None:
                entry.resource_id = new_resource_id()
            if entry.full_url and entry.resource_id and entry.method in ("POST", "PUT"):
                mapping[entry.full_url] = f"{entry.resource_type}/{entry.resource_id}"
        for entry in entries:
            if entry.resource is not None:
                rewrite_references(entry.resource, mapping)
                self._prepare_entry(entry)

    def _prepare_entry(self, entry: BundleEntry) -> None:
        """Profile checks and ``prepare_body`` for one entry; a profile failure is left for
        the write to raise (``profile_checked`` stays False, ``prepared`` None)."""
        resource = entry.resource
        assert resource is not None
        root = f"{entry.root}.resource"
        try:
            check_profile(resource, root=root)
        except GatewayError:
            return
        entry.profile_checked = True
        stored = {**resource, "id": entry.resource_id} if entry.method == "POST" else resource
        entry.prepared = prepare_body(stored, local_base=self.service.fhir_base, root=root)

    def _transaction(
        self, actor: AccessContext, entries: list[BundleEntry], representation: bool
    ) -> list[dict[str, Any]]:
        results: dict[int, dict[str, Any]] = {}
        with self.service.writing(actor, defer_reference_checks=True) as ctx:
            matched = self._resolve_identities(ctx, entries)
            for entry in entries:
                if entry.resource is not None and not entry.profile_checked:
                    with _rooted(entry):
                        # structure was checked above; profiles need the rewritten references
                        check_profile(entry.resource, root=f"{entry.root}.resource")
            for entry in sorted(entries, key=_processing_order):
                with _rooted(entry):
                    results[entry.index] = self._run(ctx, entry, matched, representation)
            self.service.finish(ctx)
        return [results[entry.index] for entry in entries]

    def _resolve_identities(
        self, ctx: WriteContext, entries: list[BundleEntry]
    ) -> dict[int, StoredVersion]:
        """Look up each conditional create: one that matches takes the stored resource's id
        instead of its provisional one, in every reference to it too."""
        replaced: dict[str, str] = {}
        matched: dict[int, StoredVersion] = {}
        for entry in entries:
            if entry.method == "POST" and entry.resource is not None and entry.if_none_exist:
                with _rooted(entry):
                    found = self.service.conditional_match(
                        ctx, entry.resource_type, entry.if_none_exist
                    )
                if found is not None:
                    matched[entry.index] = found
                    replaced[f"{entry.resource_type}/{entry.resource_id}"] = (
                        f"{entry.resource_type}/{found.id}"
                    )
                    entry.resource_id = found.id
        if replaced:
            for entry in entries:
                if entry.resource is not None and any(
                    text in replaced for text in reference_strings(entry.resource)
                ):
                    rewrite_references(entry.resource, replaced)
                    entry.profile_checked, entry.prepared = False, None
        return matched

    def _run(
        self,
        ctx: WriteContext,
        entry: BundleEntry,
        matched: dict[int, StoredVersion],
        representation: bool,
    ) -> dict[str, Any]:
        service, root = self.service, f"{entry.root}.resource"
        if entry.method == "POST":
            assert entry.resource is not None
            assert entry.resource_id is not None
            if entry.index in matched:
                return _write_response(
                    WriteResult(matched[entry.index], False, False),
                    representation,
                    service.fhir_base,
                )
            result = service.create_in(
                ctx,
                entry.resource,
                resource_id=entry.resource_id,
                root=root,
                prepared=entry.prepared,
            )
            return _write_response(result, representation, service.fhir_base)
        if entry.method == "PUT":
            assert entry.resource is not None
            assert entry.resource_id is not None
            check_body_matches_url(entry.resource, entry.resource_type, entry.resource_id)
            result = service.update_in(
                ctx,
                entry.resource_id,
                entry.resource,
                if_match=entry.if_match,
                root=root,
                prepared=entry.prepared,
            )
            return _write_response(result, representation, service.fhir_base)
        if entry.method == "DELETE":
            assert entry.resource_id is not None
            require_type(entry.resource_type)
            service.delete_in(ctx, entry.resource_type, entry.resource_id)
            return {"response": {"status": "204 No Content"}}
        return self._get(ctx.actor, entry, connection=ctx)

    # -- batch -------------------------------------------------------------------------------

    def _batch_entry(
        self, actor: AccessContext, entry: BundleEntry, representation: bool
    ) -> dict[str, Any]:
        service = self.service
        try:
            with _rooted(entry):
                if entry.method == "POST":
                    assert entry.resource is not None
                    result = service.create(
                        actor, entry.resource, if_none_exist=entry.if_none_exist
                    )
                    return _write_response(result, representation, service.fhir_base)
                if entry.method == "PUT":
                    assert entry.resource is not None
                    assert entry.resource_id is not None
                    result = service.update(
                        actor,
                        entry.resource_type,
                        entry.resource_id,
                        entry.resource,
                        if_match=entry.if_match,
                    )
                    return _write_response(result, representation, service.fhir_base)
                if entry.method == "DELETE":
                    assert entry.resource_id is not None
                    service.delete(actor, entry.resource_type, entry.resource_id)
                    return {"response": {"status": "204 No Content"}}
                return self._get(actor, entry, connection=None)
        except GatewayError as error:
            return {
                "response": {
                    "status": _status_line(error.status),
                    "outcome": outcome_from_error(error),
                }
            }

    def _get(
        self, actor: AccessContext, entry: BundleEntry, *, connection: WriteContext | None
    ) -> dict[str, Any]:
        service = self.service
        if entry.resource_id is None:
            started = now_us()
            request = service.parse_search(
                entry.resource_type, parse_qsl(entry.query or "", keep_blank_values=True)
            )
            if connection is not None:
                result = service.search_in(connection.connection, actor, request)
            else:
                with read_transaction(service.engine) as conn:
                    result = service.search_in(conn, actor, request)
            body = bundle_json.searchset(result, fhir_base=service.fhir_base, started_at=started)
            return {"resource": orjson.Fragment(body), "response": {"status": "200 OK"}}
        if entry.version_id is not None:
            stored = service.vread(actor, entry.resource_type, entry.resource_id, entry.version_id)
        elif connection is not None:
            stored = service.read_in(
                connection.connection, actor, entry.resource_type, entry.resource_id
            )
        else:
            stored = service.read(actor, entry.resource_type, entry.resource_id)
        return {
            "resource": bundle_json.body_fragment(stored),
            "response": {"status": "200 OK", "etag": bundle_json.etag(stored.version_id)},
        }


def validate_envelope(bundle: dict[str, Any]) -> None:
    """The Bundle's own structure (entries' resources are checked one by one, later)."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be an array", expression=("Bundle.entry",))
    envelope_entries = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadRequest("Each entry must be an object", expression=(f"Bundle.entry[{index}]",))
        if "resource" in entry and not isinstance(entry["resource"], dict):
            raise BadRequest(
                "An entry's resource must be a FHIR resource",
                expression=(f"Bundle.entry[{index}].resource",),
            )
        envelope_entries.append({k: v for k, v in entry.items() if k != "resource"})
    validate_structure({**bundle, "entry": envelope_entries} if entries else bundle)
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        full_url = entry.get("fullUrl")
        if full_url is not None:
            if full_url in seen:
                raise BadRequest(
                    "fullUrl values must be unique", expression=(f"Bundle.entry[{index}].fullUrl",)
                )
            seen.add(full_url)


def _processing_order(entry: BundleEntry) -> tuple[int, int, int]:
    """DELETE, POST, PUT, GET (http.html#trules); Tasks after what they may reference."""
    return (_ORDER[entry.method], 1 if entry.resource_type == "Task" else 0, entry.index)


def _check_no_overlap(entries: list[BundleEntry]) -> None:
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        if entry.method in ("PUT", "DELETE") and entry.resource_id:
            key = (entry.resource_type, entry.resource_id)
            if key in seen:
                raise BadRequest(
                    "A transaction may touch each resource once",
                    expression=(f"{entry.root}.request.url",),
                )
            seen.add(key)


def _if_match(value: Any, root: str) -> int | None:
    if value is None:
        return None
    text = str(value).removeprefix("W/").strip('"')
    if not text.isdigit():
        raise BadRequest('ifMatch must be an ETag like W/"3"', expression=(f"{root}.request",))
    return int(text)


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _write_response(result: WriteResult, representation: bool, fhir_base: str) -> dict[str, Any]:
    stored = result.stored
    entry: dict[str, Any] = {"fullUrl": bundle_json.full_url(fhir_base, stored)}
    if representation:
        entry["resource"] = bundle_json.body_fragment(stored)
    entry["response"] = {
        "status": "201 Created" if result.created else "200 OK",
        "location": f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}",
        "etag": bundle_json.etag(stored.version_id),
        "lastModified": format_instant(stored.last_updated),
    }
    return entry


@contextmanager
def _rooted(entry: BundleEntry) -> Iterator[None]:
    """Re-raise an entry's error with its FHIRPaths under ``Bundle.entry[i]``."""
    try:
        yield
    except GatewayError as error:
        root, resource_type = entry.root, entry.resource_type
        error.issues = tuple(
            Issue(
                issue.detail,
                tuple(_reroot(e, resource_type, root) for e in issue.expression) or (root,),
                issue.code,
                issue.severity,
            )
            for issue in error.issues
        )
        error.expression = error.issues[0].expression
        raise


def _reroot(expression: str, resource_type: str, root: str) -> str:
    if expression.startswith("Bundle."):
        return expression
    if expression.startswith(resource_type):
        return f"{root}.resource{expression[len(resource_type) :]}"
    return f"{root}.{expression}" if expression else root
