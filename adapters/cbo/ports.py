"""What the CBO API needs from the core: one port, implemented by gateway.

Every method takes the caller's ``AccessContext`` (from its API key or SMART token) and raises
``conformance.errors`` on refusal; the routes turn those into problem details.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from adapters.cbo.schemas import (
    ApiKeyList,
    CapacityState,
    CapacityUpdate,
    DeliveryDetail,
    DeliveryList,
    MessageList,
    ReasonCodes,
    ReferralPage,
    Webhook,
    WebhookUpdate,
)
from conformance.access import AccessContext
from fhir_mappings import ReferralAction, ReferralView

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """A POST's answer: its status and JSON body (possibly replayed for an Idempotency-Key)."""

    status_code: int
    body: bytes


@dataclass(frozen=True)
class IdempotentRequest:
    """The ``Idempotency-Key`` of a POST (None when absent) and a digest of the request it
    came with, so the same key sent with another request is refused."""

    key: str | None
    fingerprint: str


class CboCore(Protocol):
    def list_referrals(
        self,
        caller: AccessContext,
        *,
        statuses: list[str],
        needs: list[str],
        updated_since: str | None,
        sort: str,
        limit: int,
        cursor: str | None,
    ) -> ReferralPage: ...

    def get_referral(self, caller: AccessContext, referral_id: str) -> ReferralView: ...

    def act(
        self,
        caller: AccessContext,
        referral_id: str,
        action: ReferralAction,
        *,
        idempotency: IdempotentRequest,
    ) -> Answer: ...

    async def run_write(self, write: Callable[[], T]) -> T:
        """``write()``, a call above that writes (``act``), run with the writes that arrive
        together (on SQLite they share one commit); its result once committed."""
        ...

    def messages(self, caller: AccessContext, referral_id: str) -> MessageList: ...

    def get_capacity(self, caller: AccessContext) -> CapacityState: ...

    def set_capacity(self, caller: AccessContext, update: CapacityUpdate) -> CapacityState: ...

    def get_webhook(self, caller: AccessContext) -> Webhook: ...

    def set_webhook(self, caller: AccessContext, update: WebhookUpdate) -> Webhook: ...

    def delete_webhook(self, caller: AccessContext) -> None: ...

    def deliveries(self, caller: AccessContext, *, limit: int) -> DeliveryList: ...

    def delivery(self, caller: AccessContext, delivery_id: str) -> DeliveryDetail: ...

    def redeliver(
        self, caller: AccessContext, delivery_id: str, *, idempotency: IdempotentRequest
    ) -> Answer: ...

    def list_api_keys(self, caller: AccessContext) -> ApiKeyList: ...

    def create_api_key(
        self, caller: AccessContext, label: str | None, *, idempotency: IdempotentRequest
    ) -> Answer: ...

    def revoke_api_key(self, caller: AccessContext, key_id: str) -> None: ...

    def reason_codes(self) -> ReasonCodes: ...


__all__ = ["Answer", "CboCore", "IdempotentRequest"]
