"""Notification Bundles as the Backport IG's R4 profile has them (pure).

A ``history`` Bundle whose first entry is the subscription status, a ``Parameters`` with the
``backport-subscription-status-r4`` profile (``subscription``, ``topic``, ``status``, ``type``,
``events-since-subscription-start``, one ``notification-event`` per event with its
``event-number``, ``timestamp`` and ``focus``); then one entry per focus, with its resource for
``full-resource`` content and without it for ``id-only``. ``empty`` sends the status alone.
https://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition-backport-subscription-notification-r4.html
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conformance.subscriptions.subscription import BACKPORT

STATUS_PROFILE = f"{BACKPORT}backport-subscription-status-r4"
NOTIFICATION_PROFILE = f"{BACKPORT}backport-subscription-notification-r4"
NOTIFICATION_TYPES = ("handshake", "heartbeat", "event-notification", "query-status", "query-event")


@dataclass(frozen=True)
class NotificationEvent:
    number: int
    timestamp: str
    """A FHIR instant."""
    focus: str
    """Relative reference, e.g. ``Task/123``."""
    method: str
    """How the focus was written: POST, PUT or DELETE."""


@dataclass(frozen=True)
class SubscriptionState:
    """What the status ``Parameters`` say about a subscription."""

    subscription_id: str
    topic: str
    status: str
    events_since_start: int
    error: str | None = None


def status_parameters(
    state: SubscriptionState,
    *,
    kind: str,
    events: Sequence[NotificationEvent] = (),
    content: str,
    fhir_base: str,
    parameters_id: str | None = None,
) -> dict[str, Any]:
    """The ``backport-subscription-status-r4`` Parameters for one notification or query."""
    parameter: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"{fhir_base}/Subscription/{state.subscription_id}"},
        }
    ]
    if content != "empty":  # "SHOULD NOT be present when using empty payloads"
        parameter.append({"name": "topic", "valueCanonical": state.topic})
    parameter += [
        {"name": "status", "valueCode": state.status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(state.events_since_start)},
    ]
    for event in events:
        part: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(event.number)},
            {"name": "timestamp", "valueInstant": event.timestamp},
        ]
        if content != "empty":
            part.append(
                {"name": "focus", "valueReference": {"reference": f"{fhir_base}/{event.focus}"}}
            )
        parameter.append({"name": "notification-event", "part": part})
    if state.error:
        parameter.append({"name": "error", "valueCodeableConcept": {"text": state.error}})
    resource: dict[str, Any] = {"resourceType": "Parameters"}
    if parameters_id:
        resource["id"] = parameters_id
    resource["meta"] = {"profile": [STATUS_PROFILE]}
    resource["parameter"] = parameter
    return resource


def notification_bundle(
    status: dict[str, Any],
    *,
    bundle_id: str,
    timestamp: str,
    subscription_id: str,
    events: Sequence[NotificationEvent] = (),
    resources: dict[str, dict[str, Any]] | None = None,
    content: str,
    fhir_base: str,
) -> dict[str, Any]:
    """The ``history`` Bundle: the status first, then each event's focus (not for ``empty``);
    ``resources`` maps a focus to its body for ``full-resource`` (a focus missing from it is
    sent without one, as ``id-only``)."""
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status.get('id') or bundle_id}",
            "resource": status,
            "request": {"method": "GET", "url": f"Subscription/{subscription_id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if content != "empty":
        for event in events:
            entry: dict[str, Any] = {"fullUrl": f"{fhir_base}/{event.focus}"}
            body = (resources or {}).get(event.focus) if content == "full-resource" else None
            if body is not None:
                entry["resource"] = body
            resource_type = event.focus.split("/", 1)[0]
            url = resource_type if event.method == "POST" else event.focus
            entry["request"] = {"method": event.method, "url": url}
            entry["response"] = {"status": _response_status(event.method)}
            entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": timestamp,
        "entry": entries,
    }


def status_searchset(statuses: Sequence[dict[str, Any]], *, bundle_id: str) -> dict[str, Any]:
    """``$status`` at the type level: a ``searchset`` of status Parameters."""
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "searchset",
        "total": len(statuses),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{status.get('id', bundle_id)}",
                "resource": status,
                "search": {"mode": "match"},
            }
            for status in statuses
        ],
    }


def _response_status(method: str) -> str:
    return {"POST": "201", "DELETE": "204"}.get(method, "200")
