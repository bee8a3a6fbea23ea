"""Request and response bodies of the CBO API other than the referral view itself."""

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from fhir_mappings import MessageView, ReferralView

CapacityCode = Literal["capacity", "no-capacity", "waitlist", "additional-assessment-required"]
CAPACITY_CODES: tuple[str, ...] = get_args(CapacityCode)


class Problem(BaseModel):
    """RFC 9457 problem details; ``type`` is stable per kind of error."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="URI identifying the kind of problem (stable)")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request path")
    request_id: str | None = None
    errors: list["ProblemItem"] = Field(default_factory=list)


class ProblemItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    detail: str
    pointer: str | None = Field(default=None, description="Where in the request, when known")


class ReferralPage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ReferralView]
    next_cursor: str | None = Field(
        default=None, description="Pass as ?cursor= to get the next page; absent on the last"
    )


class MessageList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[MessageView]


class CapacityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: CapacityCode = Field(description="Gravity capacity status")
    note: str | None = Field(default=None, max_length=1000)
    services: list[str] | None = Field(
        default=None,
        description="HealthcareService references to update; default: all of yours",
    )


class ServiceCapacity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str
    name: str | None = None
    status: CapacityCode | None = None
    note: str | None = None


class CapacityState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    services: list[ServiceCapacity]
    auto_decline_at_capacity: bool


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="https (http only for loopback)")
    secret: str | None = Field(
        default=None,
        min_length=24,
        max_length=255,
        description="Your whsec_ secret; leave out and Loopgate makes one (shown once)",
    )


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None
    secret: str | None = Field(default=None, description="Only in the answer that set it")
    events: list[str]


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="The event id (the webhook-id header of every attempt)")
    event: str = Field(description="referral.created, referral.updated, …")
    referral_id: str | None = None
    status: Literal["pending", "delivered", "dead"] = Field(
        description="pending: not yet accepted by your endpoint (retried with backoff); "
        "dead: Loopgate gave up (redeliver to try again)"
    )
    attempts: int
    last_error: str | None = Field(default=None, description="e.g. HTTP 503, timeout")
    created: str
    delivered: str | None = None
    next_attempt: str | None = Field(default=None, description="When pending: the next try")


class DeliveryAttempt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attempt: int
    finished: str
    outcome: Literal["delivered", "retry", "dead", "abandoned"]
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None


class DeliveryDetail(Delivery):
    attempts_log: list[DeliveryAttempt] = Field(
        default_factory=list, description="Every attempt, first to last"
    )


class DeliveryList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Delivery]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(default=None, max_length=200)


class ApiKeyInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    prefix: str
    label: str | None = None
    created: str
    last_used: str | None = None
    revoked: str | None = None


class ApiKeyCreated(ApiKeyInfo):
    key: str | None = Field(
        default=None,
        description="The key itself: shown in this answer only (absent when an Idempotency-Key "
        "replays the answer, since Loopgate keeps only a digest of the key)",
    )


class ApiKeyList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ApiKeyInfo]


class ReasonCode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    display: str
    definition: str | None = None
    actions: list[str]


class ReasonCodes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system: str
    codes: list[ReasonCode]
