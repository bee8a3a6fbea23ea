"""Notification Bundles for one subscription, as its subscriber may see them now.

``full-resource`` focus bodies go through the same read check as ``GET [type]/[id]`` with the
reader's access; a focus it may no longer read is sent without its resource (as ``id-only``)
so the event numbers stay whole. The version sent is the one the event recorded.
"""

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection

from conformance.access import AccessContext
from conformance.errors import GatewayError
from conformance.fhir_time import format_instant
from conformance.subscriptions import (
    NotificationEvent,
    SubscriptionState,
    notification_bundle,
    status_parameters,
)
from gateway.fhir.ids import new_resource_id
from gateway.fhir.service import FhirService
from gateway.fhir.write_context import now_us
from gateway.store import resource_rows
from gateway.subscriptions.records import EventRecord, SubscriptionRecord


class Renderer:
    def __init__(self, service: FhirService) -> None:
        self.service = service
        self.fhir_base = service.fhir_base

    def status(
        self,
        record: SubscriptionRecord,
        *,
        kind: str,
        events_since_start: int | None = None,
        events: Sequence[EventRecord] = (),
        content: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        state = SubscriptionState(
            subscription_id=record.id,
            topic=record.topic.canonical,
            status=status or record.status,
            events_since_start=(
                record.events_since_start if events_since_start is None else events_since_start
            ),
            error=record.last_error if (status or record.status) == "error" else None,
        )
        return status_parameters(
            state,
            kind=kind,
            events=[_event(e) for e in events],
            content=content or record.content,
            fhir_base=self.fhir_base,
            parameters_id=new_resource_id(),
        )

    def bundle(
        self,
        connection: Connection,
        record: SubscriptionRecord,
        *,
        kind: str,
        reader: AccessContext,
        events_since_start: int | None = None,
        events: Sequence[EventRecord] = (),
        content: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        content = content or record.content
        parameters = self.status(
            record,
            kind=kind,
            events_since_start=events_since_start,
            events=events,
            content=content,
            status=status,
        )
        resources = (
            self._readable_bodies(connection, reader, events) if content == "full-resource" else {}
        )
        return notification_bundle(
            parameters,
            bundle_id=new_resource_id(),
            timestamp=format_instant(now_us()),
            subscription_id=record.id,
            events=[_event(e) for e in events],
            resources=resources,
            content=content,
            fhir_base=self.fhir_base,
        )

    def _readable_bodies(
        self, connection: Connection, reader: AccessContext, events: Sequence[EventRecord]
    ) -> dict[str, dict[str, Any]]:
        bodies: dict[str, dict[str, Any]] = {}
        for event in events:
            if event.method == "DELETE":
                continue
            try:
                self.service.read_in(connection, reader, event.focus_type, event.focus_id)
            except GatewayError:
                continue  # not (or no longer) the subscriber's to read
            version = resource_rows.version(
                connection, event.focus_type, event.focus_id, event.focus_version
            )
            if version is not None and version.body is not None:
                bodies[event.focus] = orjson.loads(version.body)
        return bodies


def _event(event: EventRecord) -> NotificationEvent:
    return NotificationEvent(
        number=event.number,
        timestamp=format_instant(event.occurred_at),
        focus=event.focus,
        method=event.method,
    )
