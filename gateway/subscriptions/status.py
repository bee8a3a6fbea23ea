"""The server's moves of a subscription's status (Backport IG, "Subscription status"):
``requested → active`` once a handshake is delivered, ``→ error`` while notifications fail
(they are still kept and retried), back to ``active`` when one gets through, and ``→ off`` when
the endpoint answers 410 Gone. Each move is also a new version of the Subscription resource,
with ``error`` saying why, so a client sees it on a read as well as in ``$status``."""

import orjson

from gateway.fhir.service import FhirService
from gateway.outbox import DeliveryResult
from gateway.store import resource_rows
from gateway.subscriptions import records
from gateway.subscriptions.events import SERVER
from gateway.subscriptions.records import LIVE, SubscriptionRecord


class StatusMoves:
    def __init__(self, service: FhirService) -> None:
        self.service = service

    def after_attempt(self, record: SubscriptionRecord, result: DeliveryResult) -> None:
        """Move ``record`` as the outcome of a notification to it says (read before it was
        sent: no write at all while nothing changes)."""
        if result.outcome == "delivered":
            if record.status in ("requested", "error"):
                self.move(record.id, "active", from_statuses=("requested", "error"))
        elif result.outcome == "dead" and result.status_code == 410:
            self.move(record.id, "off", from_statuses=LIVE, error="endpoint answered 410 Gone")
        elif record.status in ("requested", "active"):
            reason = result.reason or "delivery failed"
            self.move(record.id, "error", from_statuses=("requested", "active"), error=reason)

    def move(
        self,
        subscription_id: str,
        status: str,
        *,
        from_statuses: tuple[str, ...],
        error: str | None = None,
    ) -> bool:
        with self.service.writing(SERVER) as ctx:
            # the resource's row first, then the subscription's: the order a client's write of
            # the Subscription locks them in, so the two never deadlock
            current = resource_rows.current(
                ctx.connection, "Subscription", subscription_id, for_update=True
            )
            moved = records.move_status(
                ctx.connection,
                subscription_id,
                status,
                from_statuses=from_statuses,
                error=error,
                now=ctx.now,
            )
            if not moved:
                return False
            if current is None or current.deleted or current.body is None:
                return True
            body = orjson.loads(current.body)
            body["status"] = status
            if error:
                body["error"] = error
            else:
                body.pop("error", None)
            self.service.update_in(ctx, subscription_id, body)
        return True
