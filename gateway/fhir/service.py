"""FHIR interactions over the store: read, vread, create, update, delete, search and history.

Spec: http://hl7.org/fhir/R4/http.html. Each write runs in one database transaction: the new
version, its search-index rows and, for a Task, its Provenance commit together or not at all.
Structure and profile checks run before the transaction opens, so it stays short.
"""

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from conformance.access import AccessContext, Letter
from conformance.compartment import DIRECTORY_TYPES
from conformance.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    MultipleMatches,
    ResourceGone,
    ResourceNotFound,
    UnknownResourceType,
    VersionConflict,
)
from conformance.profiles import check_profile
from conformance.references import is_valid_id, reference_key, scan_references
from conformance.resource_types import RESOURCE_TYPES
from conformance.resources import validate_structure
from conformance.search_index import extract_index, local_target
from conformance.search_request import ReferenceQuery, SearchRequest, parse_search
from conformance.task_rules import TaskParties, organization_of
from gateway.access.policy import AccessFilter, access_filter
from gateway.fhir.ids import new_resource_id
from gateway.fhir.prepared_body import PreparedBody, prepare_body
from gateway.fhir.reference_integrity import local_targets, verify_targets_exist
from gateway.fhir.stored_body import content_of, stored_body
from gateway.fhir.task_workflow import TaskWorkflow
from gateway.fhir.write_context import TaskWrite, WriteContext
from gateway.store import driver, prebuilt_searches, resource_rows, search_query
from gateway.store.driver import Statement
from gateway.store.engine import is_sqlite, read_transaction, when_committed, write_transaction
from gateway.store.resource_rows import StoredVersion
from gateway.store.write_batches import WriteBatcher

T = TypeVar("T")
TaskListener = Callable[[WriteContext, Sequence[TaskWrite]], None]
"""Told of every Task version a write stored, inside its transaction, after its checks: what
it writes (outbox messages) commits or rolls back with the Task."""

WriteListener = Callable[[WriteContext, Sequence[StoredVersion]], None]
"""Told of every version a write stored (any type, deletes included), inside its transaction,
before the task listeners: what it writes commits or rolls back with them, and raising a
``GatewayError`` refuses the whole write."""

_WRITE_ATTEMPTS = 3
_SERIALISE_CONDITIONAL_CREATES = Statement("SELECT pg_advisory_xact_lock(?::bigint)")
"""PostgreSQL only; a referral's conditional create of its Patient takes it first in its
transaction. Through SQLAlchemy's execution layer it cost 123–133 µs of CPU, straight to the
driver 108 (both with the BEGIN psycopg sends ahead of it)."""
_HISTORY_IGNORED = ("Provenance", "AuditEvent")


@dataclass(frozen=True)
class WriteResult:
    stored: StoredVersion
    created: bool
    """True when the write made a new resource (201), False for an update or a match (200)."""
    changed: bool = True
    """False when an update carried no change, or a conditional create matched."""


@dataclass(frozen=True)
class SearchResult:
    request: SearchRequest
    matches: list[StoredVersion]
    included: list[StoredVersion]
    total: int | None


@dataclass(frozen=True)
class HistoryPage:
    versions: list[StoredVersion]
    total: int
    count: int
    offset: int


class FhirService:
    """The FHIR REST semantics of Loopgate; the HTTP layer only parses and renders."""

    def __init__(
        self,
        engine: Engine,
        *,
        fhir_base: str,
        default_page_size: int = 50,
        max_page_size: int = 1000,
        task_listeners: Sequence[TaskListener] = (),
        write_listeners: Sequence[WriteListener] = (),
    ) -> None:
        self.engine = engine
        self.task_listeners = list(task_listeners)
        self.write_listeners = list(write_listeners)
        self.fhir_base = fhir_base
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.tasks = TaskWorkflow(fhir_base=fhir_base)
        self.batches = WriteBatcher(engine)

    # -- reads -------------------------------------------------------------------------------

    def read(self, actor: AccessContext, resource_type: str, resource_id: str) -> StoredVersion:
        """http://hl7.org/fhir/R4/http.html#read: 404 if never stored or not the caller's to
        see, 410 if deleted."""
        require_type(resource_type)
        with read_transaction(self.engine) as connection:
            return self.read_in(connection, actor, resource_type, resource_id)

    def read_in(
        self, connection: Connection, actor: AccessContext, resource_type: str, resource_id: str
    ) -> StoredVersion:
        access = self.access(actor, resource_type, "r")
        stored = resource_rows.current(connection, resource_type, resource_id)
        if stored is None or not self._visible(connection, access, resource_id):
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not stored on Loopgate")
        if stored.deleted:
            raise ResourceGone(f"{resource_type}/{resource_id} has been deleted")
        return stored

    def vread(
        self, actor: AccessContext, resource_type: str, resource_id: str, version_id: str
    ) -> StoredVersion:
        """http://hl7.org/fhir/R4/http.html#vread"""
        require_type(resource_type)
        access = self.access(actor, resource_type, "r")
        missing = ResourceNotFound(f"{resource_type}/{resource_id} has no such version")
        if not version_id.isdigit():
            raise missing
        with read_transaction(self.engine) as connection:
            if not self._visible(connection, access, resource_id):
                raise missing
            stored = resource_rows.version(connection, resource_type, resource_id, int(version_id))
        if stored is None:
            raise missing
        if stored.deleted:
            raise ResourceGone(f"Version {version_id} of {resource_type}/{resource_id} is a delete")
        return stored

    def access(self, actor: AccessContext, resource_type: str, letter: Letter) -> AccessFilter:
        """403 unless ``actor`` may ``letter`` on ``resource_type``; else what it may reach."""
        return access_filter(actor, resource_type, letter, local_base=self.fhir_base)

    def _visible(self, connection: Connection, access: AccessFilter, resource_id: str) -> bool:
        return access.unrestricted or bool(
            search_query.visible_ids(connection, access, [resource_id])
        )

    def parse_search(
        self, resource_type: str, pairs: Sequence[tuple[str, str]], *, lenient: bool = False
    ) -> SearchRequest:
        require_type(resource_type)
        return parse_search(
            resource_type,
            pairs,
            local_base=self.fhir_base,
            lenient=lenient,
            default_count=self.default_page_size,
            max_count=self.max_page_size,
        )

    def search(self, actor: AccessContext, request: SearchRequest) -> SearchResult:
        """http://hl7.org/fhir/R4/search.html: matches, includes and the total, one snapshot;
        only what ``actor`` may see."""
        with read_transaction(self.engine) as connection:
            return self.search_in(connection, actor, request)

    def search_in(
        self, connection: Connection, actor: AccessContext, request: SearchRequest
    ) -> SearchResult:
        access = implied_visibility(self.access(actor, request.resource_type, "s"), request)
        total = None
        if request.summary_count:
            count = prebuilt_searches.count_matches(connection, request, access)
            return SearchResult(request, [], [], count)
        matches = (
            prebuilt_searches.find_matches(connection, request, access) if request.count else []
        )
        if request.total != "none":
            first_page_complete = request.offset == 0 and len(matches) < request.count
            total = (
                len(matches)
                if first_page_complete
                else prebuilt_searches.count_matches(connection, request, access)
            )
        included = self._included(connection, actor, request, matches)
        return SearchResult(request, matches, included, total)

    def _included(
        self,
        connection: Connection,
        actor: AccessContext,
        request: SearchRequest,
        matches: list[StoredVersion],
    ) -> list[StoredVersion]:
        """_include/_revinclude targets, each checked as a read by ``actor`` (else left out)."""
        matched = [(m.resource_type, m.id) for m in matches]
        keys: set[tuple[str, str]] = set()
        for include in request.includes:
            keys |= search_query.included_keys(connection, include, matched)
        for include in request.revincludes:
            keys |= search_query.revincluded_keys(connection, include, matched)
        keys -= set(matched)
        allowed: set[tuple[str, str]] = set()
        for resource_type in {key[0] for key in keys}:
            if not actor.grants_for(resource_type, "r"):
                continue
            access = self.access(actor, resource_type, "r")
            ids = [rid for rtype, rid in keys if rtype == resource_type]
            visible = search_query.visible_ids(connection, access, ids)
            allowed |= {(resource_type, rid) for rid in visible}
        found = resource_rows.current_many(connection, allowed)
        return [found[key] for key in sorted(found)]

    def history(
        self,
        actor: AccessContext,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: int | None = None,
        at_or_before: int | None = None,
        count: int | None = None,
        offset: int = 0,
    ) -> HistoryPage:
        """http://hl7.org/fhir/R4/http.html#history: newest first, paged."""
        access = None
        if resource_type is not None:
            require_type(resource_type)
            access = self.access(actor, resource_type, "r" if resource_id else "s")
        elif not actor.grants_for("*", "s") or (actor.organization and not actor.is_admin):
            raise Forbidden(
                "The whole-server history is for administrators; ask for a type's history instead"
            )
        size = min(count if count is not None else self.default_page_size, self.max_page_size)
        with read_transaction(self.engine) as connection:
            if resource_id is not None:
                stored = resource_rows.current(connection, str(resource_type), resource_id)
                if stored is None or (
                    access is not None and not self._visible(connection, access, resource_id)
                ):
                    raise ResourceNotFound(f"{resource_type}/{resource_id} is not stored")
            visible = search_query.access_condition(access) if access and not resource_id else None
            versions, total = resource_rows.history(
                connection,
                visible=visible,
                resource_type=resource_type,
                resource_id=resource_id,
                since=since,
                at_or_before=at_or_before,
                count=size,
                offset=offset,
            )
        return HistoryPage(versions, total, size, offset)

    # -- writes ------------------------------------------------------------------------------

    def create(
        self, actor: AccessContext, resource: dict[str, Any], *, if_none_exist: str | None = None
    ) -> WriteResult:
        """http://hl7.org/fhir/R4/http.html#create, conditional with ``If-None-Exist``."""
        return self.prepare_create(actor, resource, if_none_exist=if_none_exist)()

    def prepare_create(
        self, actor: AccessContext, resource: dict[str, Any], *, if_none_exist: str | None = None
    ) -> Callable[[], WriteResult]:
        """``create``'s checks that need no database, made now; returns the part that writes
        (for ``run_write``)."""
        resource_type = require_writable(resource)
        self.access(actor, resource_type, "c")
        self.validate(resource)
        prepared = prepare_body(resource, local_base=self.fhir_base)

        def create_unless_matched(ctx: WriteContext) -> WriteResult:
            if if_none_exist is not None:
                match = self.conditional_match(ctx, resource_type, if_none_exist)
                if match is not None:
                    return WriteResult(match, created=False, changed=False)
            return self.create_in(ctx, resource, prepared=prepared)

        return self._retrying(actor, create_unless_matched)

    def update(
        self,
        actor: AccessContext,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        *,
        if_match: int | None = None,
    ) -> WriteResult:
        """http://hl7.org/fhir/R4/http.html#update; creates when the id is new (updateCreate)."""
        return self.prepare_update(actor, resource_type, resource_id, resource, if_match=if_match)()

    def prepare_update(
        self,
        actor: AccessContext,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        *,
        if_match: int | None = None,
    ) -> Callable[[], WriteResult]:
        """``update``'s checks that need no database, made now; returns the part that writes."""
        require_type(resource_type)
        check_body_matches_url(resource, resource_type, resource_id)
        require_writable(resource)
        self.access(actor, resource_type, "u")
        self.validate(resource)
        prepared = prepare_body(resource, local_base=self.fhir_base)

        return self._retrying(
            actor,
            lambda ctx: self.update_in(
                ctx, resource_id, resource, if_match=if_match, prepared=prepared
            ),
        )

    def _retrying(
        self, actor: AccessContext, write_in: Callable[[WriteContext], WriteResult]
    ) -> Callable[[], WriteResult]:
        """``write_in`` in its own transaction, tried again when a concurrent create of the
        same new id or identity won the race (IntegrityError)."""

        def write() -> WriteResult:
            for attempt in range(_WRITE_ATTEMPTS):
                try:
                    with self.writing(actor) as ctx:
                        return write_in(ctx)
                except IntegrityError:
                    if attempt == _WRITE_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

        return write

    def delete(self, actor: AccessContext, resource_type: str, resource_id: str) -> bool:
        """http://hl7.org/fhir/R4/http.html#delete; returns False when already deleted."""
        return self.prepare_delete(actor, resource_type, resource_id)()

    def prepare_delete(
        self, actor: AccessContext, resource_type: str, resource_id: str
    ) -> Callable[[], bool]:
        """``delete``'s checks that need no database, made now; returns the part that writes."""
        spec = require_type(resource_type)
        if not spec.writable:
            raise MethodNotAllowed(f"{resource_type} records are written by Loopgate only")
        self.access(actor, resource_type, "d")

        def write() -> bool:
            with self.writing(actor) as ctx:
                return self.delete_in(ctx, resource_type, resource_id)

        return write

    async def run_write(self, write: Callable[[], T]) -> T:
        """Run a prepared write, in a group commit with the writes that arrive with it on
        SQLite (``gateway/store/write_batches.py``); its result once committed."""
        return await self.batches.run(write)

    @contextmanager
    def writing(
        self, actor: AccessContext, *, defer_reference_checks: bool = False
    ) -> Iterator[WriteContext]:
        """One database transaction for one logical write: its rows are flushed and committed
        together when the block ends, or none of them when it raises. (In a group commit on
        SQLite, a savepoint of the batch's transaction: kept or rolled back the same way.)"""
        with write_transaction(self.engine) as connection:
            ctx = WriteContext(connection, actor, defer_reference_checks=defer_reference_checks)
            yield ctx
            # the write's own rows go first: the listeners then lock the rows every writer
            # for the same organization or subscription shares (event counters), and hold
            # them only until the commit, not through this batch as well. The write
            # listeners (subscriptions) go before the Task listeners: they read a good deal
            # before they lock anything, and would otherwise do it holding the feed counters
            ctx.flush()
            if ctx.written:
                for write_listener in self.write_listeners:
                    write_listener(ctx, list(ctx.written))
            if ctx.task_writes:
                for listener in self.task_listeners:
                    listener(ctx, ctx.task_writes)
            ctx.flush()  # anything a listener wrote through the service
        when_committed(self.engine, ctx.after_commit)

    def validate(self, resource: dict[str, Any], *, root: str | None = None) -> None:
        """Structure (400) then Gravity profile (422) checks, outside any transaction."""
        validate_structure(resource, root=root)
        check_profile(resource, root=root)

    def conditional_match(
        self, ctx: WriteContext, resource_type: str, query: str
    ) -> StoredVersion | None:
        """The one resource ``query`` matches, None for no match, 412 for several."""
        pairs = parse_qsl(
            query.lstrip("?").removeprefix(f"{resource_type}?"), keep_blank_values=True
        )
        if not pairs:
            raise BadRequest("If-None-Exist needs search parameters, e.g. identifier=sys|value")
        request = self.parse_search(resource_type, pairs)
        request.count, request.offset, request.sort = 2, 0, []
        connection = ctx.reading_type(resource_type)
        if not is_sqlite(connection):  # serialise identical conditional creates
            digest = hashlib.sha256(f"{resource_type}?{query}".encode()).digest()
            key = int.from_bytes(digest[:8], "big", signed=True)
            driver.first(connection, _SERIALISE_CONDITIONAL_CREATES, (key,))
        matches = prebuilt_searches.find_matches(connection, request)
        if len(matches) > 1:
            raise MultipleMatches("If-None-Exist matches more than one resource")
        return matches[0] if matches else None

    def create_in(
        self,
        ctx: WriteContext,
        resource: dict[str, Any],
        *,
        resource_id: str | None = None,
        root: str | None = None,
        prepared: PreparedBody | None = None,
    ) -> WriteResult:
        """Create inside ``ctx``'s transaction; a client-sent id is ignored (http.html#create).
        ``prepared``: ``prepare_body`` of this body with the same ``root``, if made already."""
        resource_type = str(resource["resourceType"])
        new_id = resource_id or new_resource_id()
        resource = {**resource, "id": new_id}
        self._check_within_grants(ctx, resource, "c")
        parties = self.tasks.check_create(ctx, resource) if resource_type == "Task" else None
        self._check_references(ctx, resource, root=root, prepared=prepared)
        stored = self._store(
            ctx, resource, version_id=1, method="POST", parties=parties, prepared=prepared
        )
        return WriteResult(stored, created=True)

    def update_in(
        self,
        ctx: WriteContext,
        resource_id: str,
        resource: dict[str, Any],
        *,
        if_match: int | None = None,
        root: str | None = None,
        prepared: PreparedBody | None = None,
    ) -> WriteResult:
        """Update inside ``ctx``'s transaction, or create when the id is new; ``prepared`` as
        for ``create_in``."""
        resource_type = str(resource["resourceType"])
        old = resource_rows.current(
            ctx.reading([(resource_type, resource_id)]), resource_type, resource_id, for_update=True
        )
        if if_match is not None and (old is None or old.deleted or old.version_id != if_match):
            raise VersionConflict(
                f"{resource_type}/{resource_id} is not at version {if_match}; read it again "
                "and retry with its current ETag",
                expression=(f"{resource_type}.meta.versionId",),
            )
        if old is not None:
            self._check_may_change(ctx, old)
        self._check_within_grants(ctx, resource, "u")
        if old is None or old.deleted or old.body is None:
            version_id = old.version_id + 1 if old else 1
            parties = self.tasks.check_create(ctx, resource) if resource_type == "Task" else None
            self._check_references(ctx, resource, root=root, prepared=prepared)
            stored = self._store(
                ctx,
                resource,
                version_id=version_id,
                method="PUT",
                is_new=old is None,
                parties=parties,
                prepared=prepared,
            )
            return WriteResult(stored, created=True)
        previous = orjson.loads(old.body)
        self._check_within_grants(ctx, previous, "u")
        if content_of(previous) == content_of(resource):
            return WriteResult(old, created=False, changed=False)
        parties = (
            self.tasks.check_update(ctx, previous, resource) if resource_type == "Task" else None
        )
        self._check_references(ctx, resource, root=root, previous=previous, prepared=prepared)
        stored = self._store(
            ctx,
            resource,
            version_id=old.version_id + 1,
            method="PUT",
            is_new=False,
            parties=parties,
            previous=previous,
            prepared=prepared,
        )
        return WriteResult(stored, created=False)

    def delete_in(self, ctx: WriteContext, resource_type: str, resource_id: str) -> bool:
        old = resource_rows.current(
            ctx.reading([(resource_type, resource_id)]), resource_type, resource_id, for_update=True
        )
        if old is None:
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not stored on Loopgate")
        self._check_may_change(ctx, old)
        if old.deleted or old.body is None:
            return False
        self._check_within_grants(ctx, orjson.loads(old.body), "d")
        if resource_type == "Task":
            self.tasks.check_delete(ctx, orjson.loads(old.body))
            ctx.pending.set_task_parties(resource_id, None)
        referrers = resource_rows.referenced_by(
            ctx.connection, resource_type, resource_id, ignore=_HISTORY_IGNORED
        )
        if referrers:
            raise Conflict(
                f"{resource_type}/{resource_id} is still referenced by "
                f"{', '.join(referrers)} resources; change or delete those first"
            )
        stored = StoredVersion(
            resource_type, resource_id, old.version_id + 1, ctx.now, True, None, "DELETE"
        )
        ctx.pending.add_version(
            resource_type=resource_type,
            resource_id=resource_id,
            version_id=stored.version_id,
            last_updated=ctx.now,
            method="DELETE",
            body=None,
            created_by=None,
        )
        ctx.pending.replace_index(resource_type, resource_id, None, is_new=False)
        ctx.written.append(stored)
        if resource_type == "Task":
            self._store_provenance(ctx, stored, "delete")
        return True

    def finish(self, ctx: WriteContext) -> None:
        """Checks deferred to the end of a transaction (references between its entries)."""
        written = {(s.resource_type, s.id) for s in ctx.written if not s.deleted}
        targets = ctx.pending_references
        connection = ctx.reading(key for _, key in targets if key not in written)
        verify_targets_exist(connection, targets, written=written)

    def _check_references(
        self,
        ctx: WriteContext,
        resource: dict[str, Any],
        *,
        root: str | None,
        previous: dict[str, Any] | None = None,
        prepared: PreparedBody | None = None,
    ) -> None:
        """Every local reference must name a stored resource. An update checks only the
        targets its previous version did not name: those were checked when written, and a
        resource cannot be deleted while others reference it (``delete_in``), save by the
        history types, whose own targets are therefore always checked."""
        if prepared is not None:
            targets = prepared.targets
        else:
            targets = local_targets(resource, local_base=self.fhir_base, root=root)
        if previous is not None and resource["resourceType"] not in _HISTORY_IGNORED:
            scan = scan_references(previous, local_base=self.fhir_base)  # never raises
            named_before = {(ref.resource_type, ref.id) for _, ref in scan.local}
            targets = [target for target in targets if target[1] not in named_before]
        if ctx.defer_reference_checks:
            ctx.pending_references.extend(targets)
        else:
            self_key = (str(resource["resourceType"]), str(resource["id"]))
            connection = ctx.reading(key for _, key in targets if key != self_key)
            verify_targets_exist(connection, targets, written={self_key})

    def _store(
        self,
        ctx: WriteContext,
        resource: dict[str, Any],
        *,
        version_id: int,
        method: str,
        is_new: bool = True,
        parties: TaskParties | None = None,
        previous: dict[str, Any] | None = None,
        prepared: PreparedBody | None = None,
    ) -> StoredVersion:
        resource_type, resource_id = str(resource["resourceType"]), str(resource["id"])
        body = stored_body(resource, resource_id=resource_id, version_id=version_id, now=ctx.now)
        ctx.pending.add_version(
            resource_type=resource_type,
            resource_id=resource_id,
            version_id=version_id,
            last_updated=ctx.now,
            method=method,
            body=body,
            created_by=ctx.actor.organization,
        )
        if prepared is not None:
            entries = prepared.entries
        else:
            entries = extract_index(resource, local_base=self.fhir_base)
        ctx.pending.replace_index(
            resource_type, resource_id, entries, is_new=is_new and version_id == 1
        )
        stored = StoredVersion(resource_type, resource_id, version_id, ctx.now, False, body, method)
        ctx.written.append(stored)
        if resource_type == "Task" and parties is not None:
            row = {
                **parties.row(str(resource.get("status"))),
                "owner_ref": local_target(entries, "owner"),
                "last_updated": ctx.now,
            }
            ctx.pending.set_task_parties(resource_id, row)
            self._store_provenance(ctx, stored, "create" if version_id == 1 else "update")
            ctx.task_writes.append(TaskWrite(previous, resource, stored, parties))
        return stored

    def _check_may_change(self, ctx: WriteContext, old: StoredVersion) -> None:
        """Only the organization that created a resource changes it (Tasks: see task_rules).

        A resource the caller cannot see is refused the same way, so nothing is learnt
        beyond "not yours".
        """
        actor = ctx.actor
        if old.resource_type == "Task" or actor.organization is None or actor.is_admin:
            return
        if old.created_by != actor.organization and not self._describes(old, actor.organization):
            raise Forbidden(
                f"{old.resource_type}/{old.id} belongs to another organization; only the "
                "organization that created it may change it",
                expression=(old.resource_type,),
            )

    def _describes(self, old: StoredVersion, organization: str) -> bool:
        """Directory records belong to the organization they describe (its Organization,
        HealthcareServices, Locations and PractitionerRoles), whoever entered them."""
        if old.resource_type not in DIRECTORY_TYPES or old.body is None:
            return False
        described = organization_of(orjson.loads(old.body))
        return reference_key(described, local_base=self.fhir_base) == organization

    def _check_within_grants(
        self, ctx: WriteContext, resource: dict[str, Any], letter: Letter
    ) -> None:
        """A write must stay inside the token's patient compartment and scope constraints."""
        access = self.access(ctx.actor, str(resource["resourceType"]), letter)
        if not access.admits(resource, local_base=self.fhir_base):
            raise Forbidden(
                f"The access token does not allow this {resource['resourceType']}: it is "
                "outside the patient in context or the scope's constraints",
                expression=(str(resource["resourceType"]),),
            )

    def _store_provenance(self, ctx: WriteContext, task: StoredVersion, activity: str) -> None:
        provenance = self.tasks.provenance(ctx, task, activity)
        self._store(ctx, provenance, version_id=1, method="POST")


def implied_visibility(access: AccessFilter, request: SearchRequest) -> AccessFilter:
    """Drop the organization check when the criteria already imply it: every Task whose
    ``owner`` or ``requester`` is the caller's own Organization is the caller's to see. It is
    the query every inbox poll makes, and the check is its most expensive part."""
    if access.organization is None or request.resource_type != "Task":
        return access
    own = access.organization.removeprefix("Organization/")
    for criterion in request.criteria:
        if criterion.parameter.code in ("owner", "requester") and criterion.modifier is None:
            values = criterion.values
            if values and all(
                isinstance(v, ReferenceQuery)
                and v.target_type == "Organization"
                and v.target_id == own
                and not v.target_base
                for v in values
            ):
                return replace(access, organization=None)
    return access


def require_type(resource_type: str) -> Any:
    spec = RESOURCE_TYPES.get(resource_type)
    if spec is None:
        raise UnknownResourceType(
            f"Loopgate does not serve the resource type '{resource_type[:64]}'"
        )
    return spec


def require_writable(resource: dict[str, Any]) -> str:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise BadRequest(
            "The body is not a FHIR resource: resourceType is missing", expression=("resourceType",)
        )
    spec = RESOURCE_TYPES.get(resource_type)
    if spec is None:
        raise BadRequest(
            f"Loopgate does not serve the resource type '{resource_type[:64]}'",
            expression=("resourceType",),
        )
    if not spec.writable:
        raise MethodNotAllowed(f"{resource_type} records are written by Loopgate only")
    return resource_type


def check_body_matches_url(resource: dict[str, Any], resource_type: str, resource_id: str) -> None:
    """http.html#update: the body's type and id must be those of the URL, else 400."""
    if not is_valid_id(resource_id):
        raise BadRequest("The id in the URL is not a valid FHIR id")
    if resource.get("resourceType") != resource_type:
        raise BadRequest(
            f"The body is not a {resource_type}; resourceType must match the URL",
            expression=("resourceType",),
        )
    if resource.get("id") != resource_id:
        raise BadRequest(
            "The body's id must equal the id in the URL", expression=(f"{resource_type}.id",)
        )
