"""Auto-decline at capacity: a partner whose policy asks for it declines new referrals while
every service it states a capacity for says ``no-capacity``.

The decision is taken in the transaction that routes the referral to the partner (an outbox
message, see ``events``); this handler then declines it as the partner, through the same
workflow call the JSON API's ``/decline`` makes, so the referrer sees an ordinary rejection
with reason ``no-capacity``. A referral someone already moved on is left alone.
"""

import logging

from adapters.cbo.ports import IdempotentRequest
from conformance.access import AccessContext
from conformance.errors import Forbidden, ResourceGone, ResourceNotFound, TransitionNotAllowed
from fhir_mappings import DeclineAction
from gateway.outbox import DeliveryResult, Handler, OutboxMessage
from gateway.referrals.cbo_core import CboApi

log = logging.getLogger("loopgate.referrals")

AUTO_DECLINE_CLIENT = "loopgate:auto-decline"
AUTO_DECLINE_TEXT = "Declined automatically: the organization has no capacity at the moment."


def auto_decline_handler(api: CboApi) -> Handler:
    async def decline(message: OutboxMessage) -> DeliveryResult:
        referral_id = str(message.payload["referral_id"])
        partner = AccessContext(organization=message.destination, client_id=AUTO_DECLINE_CLIENT)
        action = DeclineAction(reason="no-capacity", text=AUTO_DECLINE_TEXT)
        try:
            api.act(
                partner,
                referral_id,
                action,
                idempotency=IdempotentRequest(f"auto-decline:{message.id}", "auto-decline"),
            )
        except (TransitionNotAllowed, Forbidden, ResourceNotFound, ResourceGone) as refused:
            # moved on, handed to someone else, or deleted since: nothing left to decline
            log.info("auto-decline of Task/%s skipped: %s", referral_id, type(refused).__name__)
        return DeliveryResult.delivered()

    return decline
