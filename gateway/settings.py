"""Loopgate's settings, read once from ``LOOPGATE_*`` environment variables and passed down."""

from email.utils import parseaddr
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPGATE_", env_file=None, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    database_url: str = "sqlite:///./data/loopgate.db"
    public_url: str = ""
    """Public base of this server (issuer, absolute links); defaults to http://host:port."""
    provision_file: Path | None = None
    """A provisioning file (resources, users, clients) applied at every start."""
    demo_dir: Path = Path("./data/demo")
    """Where ``loopgate demo`` keeps the sandbox clients' private keys."""
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    outbox_worker: bool = True
    """Deliver outbox messages (webhooks, e-mail, notifications) from this process."""
    outbox_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    """How often the outbox worker looks for messages other processes enqueued."""
    outbox_batch_size: int = Field(default=16, ge=1, le=1000)
    outbox_concurrency: int = Field(default=16, ge=1, le=1000)
    outbox_lease_s: float = Field(default=60.0, gt=0)
    """A claimed message whose process died is delivered again after this. An attempt is cut
    off at 80 % of it, so keep it well above the 10 s webhook timeout."""
    outbox_retry_base_s: float = Field(default=5.0, gt=0)
    outbox_retry_cap_s: float = Field(default=1800.0, gt=0)
    outbox_give_up_hours: float = Field(default=72.0, gt=0)
    events_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    """How often a process looks for referral events other processes committed, for the live
    streams it serves (its own commits reach them at once)."""
    events_keepalive_s: float = Field(default=15.0, gt=0, le=300)
    """A live stream sends a ``: keep-alive`` comment after this long without an event."""
    events_retention_days: float = Field(default=7.0, gt=0)
    """How long referral events stay resumable (``Last-Event-ID``) before they are purged."""
    shutdown_grace_s: int = Field(default=10, ge=1, le=600)
    """At shutdown, how long open connections (live streams included) may finish before they
    are cut; a cut stream's client reconnects, to another process, and resumes."""
    smtp_host: str = ""
    """The SMTP server for e-mail to CBO staff; empty (the default) turns e-mail off."""
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    """Defaults to 587 for starttls, 465 for tls, 25 for none."""
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    """starttls (upgrade a plain connection), tls (implicit TLS) or none (a local relay)."""
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = ""
    """The From of every e-mail, e.g. ``Loopgate referrals <referrals@example.org>``."""
    smtp_timeout_s: float = Field(default=20.0, gt=0, le=120)
    email_link_ttl_hours: float = Field(default=168.0, gt=0, le=24 * 90)
    """How long the accept and decline links in an e-mail work."""
    email_overdue_scan_s: float = Field(default=300.0, ge=0)
    """How often this process looks for overdue referrals to remind staff of (0: never)."""
    email_time_zone: str = "UTC"
    """The IANA time zone e-mails and link pages show times in, e.g. America/Chicago."""

    subscription_heartbeat_scan_s: float = Field(default=5.0, ge=0)
    """How often this process looks for subscription heartbeats that are due (0: never)."""

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        if not value.startswith(("sqlite://", "postgresql+psycopg://")):
            raise ValueError("LOOPGATE_DATABASE_URL must be sqlite:///… or postgresql+psycopg://…")
        return value

    @model_validator(mode="after")
    def _public_url(self) -> "Settings":
        if not self.public_url:
            host = self.host if ":" not in self.host else f"[{self.host}]"
            self.public_url = f"http://{host}:{self.port}"
        self.public_url = self.public_url.rstrip("/")
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("LOOPGATE_PUBLIC_URL must be an absolute http(s) URL")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError("LOOPGATE_PUBLIC_URL must use https unless it is a loopback address")
        return self

    @model_validator(mode="after")
    def _email(self) -> "Settings":
        try:
            if self.email_time_zone != "UTC":  # UTC needs no tz database
                ZoneInfo(self.email_time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("LOOPGATE_EMAIL_TIME_ZONE must be an IANA time zone") from None
        if not self.smtp_host:
            return self
        if "@" not in parseaddr(self.smtp_from)[1]:
            raise ValueError("LOOPGATE_SMTP_FROM must be an address, e.g. referrals@example.org")
        loopback = self.smtp_host in _LOOPBACK_HOSTS
        if self.smtp_security == "none" and self.smtp_username and not loopback:
            raise ValueError("LOOPGATE_SMTP_SECURITY=none would send the SMTP password in clear")
        return self

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def fhir_base(self) -> str:
        return f"{self.public_url}/fhir"

    @property
    def api_base(self) -> str:
        return f"{self.public_url}/api/v1"

    @property
    def database_label(self) -> str:
        """The database URL without any password, safe to log."""
        parts = urlsplit(self.database_url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.database_url


@cache
def get_settings() -> Settings:
    return Settings()
