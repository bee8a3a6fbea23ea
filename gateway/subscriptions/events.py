"""The ``FhirService`` write listener of subscriptions, in the writer's own transaction.

A Subscription write keeps its ``subscription`` row in step (and queues the handshake of a new
or re-requested one); a Task or ServiceRequest write that is an event of a topic, passes a
subscription's filters and is readable with the subscriber's recorded access becomes a
numbered event, logged for ``$events`` and queued on the outbox, ordered per subscription.
Everything commits with the write or not at all, so no event is lost and none is invented.
"""

from collections.abc import Callable, Sequence

import orjson

from conformance.access import AccessContext
from conformance.errors import GatewayError, Issue, ProfileViolation
from conformance.subscriptions import (
    EMAIL,
    TOPIC_TYPES,
    SubscriptionSpec,
    event_focus,
    event_keys,
    raises_event,
    read_subscription,
)
from conformance.task_rules import TaskParties
from gateway.access.visibility import task_parties_visible
from gateway.fhir.service import FhirService
from gateway.fhir.write_context import WriteContext
from gateway.outbox import enqueue, enqueue_many
from gateway.store import resource_rows
from gateway.store.resource_rows import StoredVersion
from gateway.subscriptions import records
from gateway.subscriptions.live import LiveSubscriptions
from gateway.subscriptions.records import EventRecord

SUBSCRIPTION_KIND = "subscription"
SERVER_CLIENT = "loopgate:subscriptions"
SERVER = AccessContext(organization=None, client_id=SERVER_CLIENT)
"""Loopgate itself, when it moves a subscription's status (active, error, off)."""
CLIENT_STATUSES = ("requested", "off")
"""The statuses a client may ask for; active and error are the server's to set."""


def enqueue_notification(
    ctx: WriteContext, subscription_id: str, payload: dict[str, object]
) -> None:
    enqueue(
        ctx.connection,
        kind=SUBSCRIPTION_KIND,
        destination=subscription_id,
        ordering_key=subscription_id,
        payload=payload,
    )


def event_payload(event: EventRecord) -> dict[str, object]:
    """An event's outbox payload: its number, and what the ``$events`` log holds of it, so an
    id-only notification renders without reading the log back."""
    return {
        "type": "event-notification",
        "event": event.number,
        "occurred_at": event.occurred_at,
        "focus": [event.focus_type, event.focus_id, event.focus_version, event.method],
    }


class SubscriptionEvents:
    def __init__(
        self,
        service: FhirService,
        *,
        email_enabled: bool,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self.email_enabled = email_enabled
        self.after_commit = after_commit
        self.live = LiveSubscriptions(local_base=service.fhir_base)

    def __call__(self, ctx: WriteContext, written: Sequence[StoredVersion]) -> None:
        queued = False
        for stored in written:
            if stored.resource_type == "Subscription":
                queued |= self._subscription_written(ctx, stored)
            elif stored.resource_type in TOPIC_TYPES:
                queued |= self._resource_written(ctx, stored)
        if queued and self.after_commit is not None:
            ctx.after_commit.append(self.after_commit)

    # -- Subscriptions -----------------------------------------------------------------------

    def _subscription_written(self, ctx: WriteContext, stored: StoredVersion) -> bool:
        if ctx.actor is SERVER:
            return False  # our own status move: the row is already where it should be
        existing = records.get_subscription(ctx.connection, stored.id)
        if stored.deleted or stored.body is None:
            if existing is not None:
                records.move_status(
                    ctx.connection,
                    stored.id,
                    "off",
                    from_statuses=("requested", "active", "error"),
                    now=ctx.now,
                )
            return False
        spec = read_subscription(orjson.loads(stored.body))
        self._check_channel(spec)
        if existing is None:
            if spec.status != "requested":
                raise _status_refused("A new Subscription must have status requested")
            records.insert_subscription(
                ctx.connection, stored.id, spec, actor=ctx.actor, status="requested", now=ctx.now
            )
            return self._handshake(ctx, stored.id, 0)
        if spec.status != existing.status and spec.status not in CLIENT_STATUSES:
            raise _status_refused(
                "A client sets status requested (to start again) or off; Loopgate sets "
                "active and error"
            )
        records.update_subscription(
            ctx.connection, stored.id, spec, actor=ctx.actor, status=spec.status
        )
        if spec.status == "requested":
            return self._handshake(ctx, stored.id, existing.events_since_start)
        return False

    def _check_channel(self, spec: SubscriptionSpec) -> None:
        if spec.channel == EMAIL and not self.email_enabled:
            raise ProfileViolation(
                "The email channel needs an SMTP server, which this Loopgate has not configured",
                issues=(
                    Issue(
                        "The email channel needs an SMTP server, which this Loopgate has not "
                        "configured",
                        ("Subscription.channel.type",),
                        "not-supported",
                    ),
                ),
            )

    def _handshake(self, ctx: WriteContext, subscription_id: str, events: int) -> bool:
        enqueue_notification(
            ctx, subscription_id, {"type": "handshake", "events_since_start": events}
        )
        return True

    # -- Task and ServiceRequest writes ------------------------------------------------------

    def _resource_written(self, ctx: WriteContext, stored: StoredVersion) -> bool:
        live = self.live.of(ctx.other_tables, stored.resource_type)
        if not live.matchers:
            return False
        method, body = self._event_of(ctx, stored)
        if body is None:
            return False
        parties = next((write.parties for write in ctx.task_writes if write.stored is stored), None)
        focus = event_focus(body, local_base=self.service.fhir_base, parties=parties)
        readable: dict[AccessContext, bool] = {}  # many subscriptions share one subscriber
        matched: list[str] = []
        for subscription in live.candidates(event_keys(focus)):
            if not raises_event(subscription.topic, subscription.criteria, focus, method=method):
                continue
            access = subscription.access
            if access not in readable:
                readable[access] = self._readable(ctx, access, stored, body, parties)
            if readable[access]:
                matched.append(subscription.id)
        if not matched:
            return False
        # one statement each for every matching subscription: counters (locked in id order,
        # the order candidates come in), the $events log and the outbox
        numbers = records.next_event_numbers(ctx.other_tables, matched, now=ctx.now)
        counted = [(sub_id, numbers[sub_id]) for sub_id in matched if sub_id in numbers]
        focus_of = (stored.resource_type, stored.id, stored.version_id, stored.method)
        records.record_events(
            ctx.other_tables,
            [(sub_id, EventRecord(number, ctx.now, *focus_of)) for sub_id, number in counted],
        )
        enqueue_many(
            ctx.other_tables,
            kind=SUBSCRIPTION_KIND,
            messages=[
                (sub_id, sub_id, event_payload(EventRecord(number, ctx.now, *focus_of)))
                for sub_id, number in counted
            ],
        )
        return bool(counted)

    def _event_of(
        self, ctx: WriteContext, stored: StoredVersion
    ) -> tuple[str, dict[str, object] | None]:
        """The topic method (create | update | delete) and the body its criteria apply to:
        for a delete, the version it removed."""
        if stored.deleted or stored.body is None:
            previous = resource_rows.version(
                ctx.connection, stored.resource_type, stored.id, stored.version_id - 1
            )
            body = orjson.loads(previous.body) if previous and previous.body else None
            return "delete", body
        return ("create" if stored.version_id == 1 else "update"), orjson.loads(stored.body)

    def _readable(
        self,
        ctx: WriteContext,
        actor: AccessContext,
        stored: StoredVersion,
        body: dict[str, object],
        parties: TaskParties | None,
    ) -> bool:
        """The subscriber may read the focus, as GET [type]/[id] decides. A delete is
        readable by no one but an unrestricted subscriber (the version is gone). A Task this
        write stored is judged in memory, from the parties the write resolved."""
        if stored.deleted:
            return actor.grants is None and actor.organization is None
        try:
            if stored.resource_type == "Task" and parties is not None:
                access = self.service.access(actor, "Task", "r")
                if not access.admits(body, local_base=self.service.fhir_base):
                    return False
                organization = access.organization
                status = str(body.get("status"))
                return organization is None or task_parties_visible(parties, status, organization)
            self.service.read_in(ctx.connection, actor, stored.resource_type, stored.id)
        except GatewayError:
            return False
        return True


def _status_refused(detail: str) -> ProfileViolation:
    return ProfileViolation(
        detail, issues=(Issue(detail, ("Subscription.status",), "business-rule"),)
    )
