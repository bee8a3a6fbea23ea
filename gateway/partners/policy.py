"""A partner's policy and contact points: read, provisioned, and changed through the API."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, Engine, insert, select, update

from adapters.webhooks import new_webhook_secret, webhook_url_problem
from adapters.webhooks.signature import secret_key
from gateway.partners.api_keys import is_api_key
from gateway.partners.tables import partner_table
from gateway.store import driver
from gateway.store.driver import Statement

P = partner_table.c


@dataclass(frozen=True)
class Partner:
    organization: str
    consent_required: bool = False
    auto_decline_at_capacity: bool = False
    respond_within_hours: int | None = None
    close_within_days: int | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    emails: tuple[str, ...] = field(default_factory=tuple)


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consent_required: bool = False
    auto_decline_at_capacity: bool = False
    respond_within_hours: int | None = Field(default=None, ge=1, le=24 * 90)
    close_within_days: int | None = Field(default=None, ge=1, le=3650)


class WebhookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048)
    secret: str = Field(max_length=255)
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24 to 64 random bytes."""

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        problem = webhook_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("secret")
    @classmethod
    def _standard_secret(cls, value: str) -> str:
        return check_webhook_secret(value)


def check_webhook_secret(secret: str) -> str:
    """``secret`` if it is a usable Standard Webhooks secret, else ValueError saying why."""
    if not secret.startswith("whsec_") or not 24 <= len(secret_key(secret)) <= 64:
        raise ValueError("must be whsec_ followed by base64 of 24 to 64 random bytes")
    return secret


def _issued_key(key: str) -> str:
    if not is_api_key(key) or len(key) < 36 or any(c.isspace() for c in key):
        raise ValueError(
            "an API key is lgk_ and at least 32 random characters, as "
            "`loopgate api-key create` issues them"
        )
    return key


class PartnerSpec(BaseModel):
    """One entry of the provisioning file's ``partners`` list."""

    model_config = ConfigDict(extra="forbid")
    organization: str = Field(pattern=r"^Organization/[A-Za-z0-9\-.]{1,64}$")
    api_keys: list[Annotated[str, AfterValidator(_issued_key)]] = Field(default_factory=list)
    webhook: WebhookSpec | None = None
    emails: list[str] = Field(default_factory=list)
    policy: PolicySpec = Field(default_factory=PolicySpec)

    @field_validator("emails")
    @classmethod
    def _addresses(cls, emails: list[str]) -> list[str]:
        for address in emails:
            local, at, domain = address.partition("@")
            if not at or not local or "." not in domain or any(c.isspace() for c in address):
                raise ValueError("each e-mail must look like name@example.org")
        return emails


_PARTNER = Statement(
    "SELECT consent_required, auto_decline_at_capacity, respond_within_hours, "
    "close_within_days, webhook_url, webhook_secret, emails FROM partner WHERE organization = ?"
)


def get_partner(connection: Connection, organization: str) -> Partner:
    """The partner's settings; an organization without a row gets the defaults. Every Task
    write reads them, so the statement goes straight to the driver."""
    row = driver.first(connection, _PARTNER, (organization,))
    if row is None:
        return Partner(organization)
    consent, auto_decline, respond_within, close_within, url, secret, emails = row
    if isinstance(emails, str):  # SQLite hands back the JSON text, psycopg the decoded list
        emails = orjson.loads(emails)
    return Partner(
        organization=organization,
        consent_required=bool(consent),
        auto_decline_at_capacity=bool(auto_decline),
        respond_within_hours=respond_within,
        close_within_days=close_within,
        webhook_url=url,
        webhook_secret=secret,
        emails=tuple(emails or ()),
    )


def webhook_target(engine: Engine) -> Callable[[str], tuple[str, str] | None]:
    """For the outbox's webhook handler: an organization's webhook (url, secret), read on
    every attempt so a fixed URL or rotated secret counts from the next retry."""

    def target(organization: str) -> tuple[str, str] | None:
        with engine.connect() as connection:
            partner = get_partner(connection, organization)
        if partner.webhook_url is None or partner.webhook_secret is None:
            return None
        return partner.webhook_url, partner.webhook_secret

    return target


def upsert_partner(connection: Connection, spec: PartnerSpec) -> None:
    values: dict[str, Any] = {
        **spec.policy.model_dump(),
        "webhook_url": spec.webhook.url if spec.webhook else None,
        "webhook_secret": spec.webhook.secret if spec.webhook else None,
        "emails": list(spec.emails),
    }
    _write(connection, spec.organization, values)


def set_webhook(connection: Connection, organization: str, url: str, secret: str | None) -> str:
    """Point the partner's webhook at ``url``; returns the secret (a new one when not given)."""
    secret = secret or new_webhook_secret()
    _write(connection, organization, {"webhook_url": url, "webhook_secret": secret})
    return secret


def clear_webhook(connection: Connection, organization: str) -> None:
    _write(connection, organization, {"webhook_url": None, "webhook_secret": None})


def _write(connection: Connection, organization: str, values: dict[str, Any]) -> None:
    exists = connection.execute(
        select(P.organization).where(P.organization == organization)
    ).first()
    if exists is None:
        connection.execute(insert(partner_table).values(organization=organization, **values))
    else:
        connection.execute(
            update(partner_table).where(P.organization == organization).values(**values)
        )
