"""E-mail to CBO staff: referral messages without client details, handed to an SMTP server."""

from adapters.email.compose import (
    ActionLinks,
    Letter,
    ReferralSummary,
    format_when,
    referral_email,
    summary_from_view,
)
from adapters.email.smtp import (
    DEFAULT_PORTS,
    EmailAttempt,
    SmtpConfig,
    attempt_for_error,
    send_email,
)

__all__ = [
    "DEFAULT_PORTS",
    "ActionLinks",
    "EmailAttempt",
    "Letter",
    "ReferralSummary",
    "SmtpConfig",
    "attempt_for_error",
    "format_when",
    "referral_email",
    "send_email",
    "summary_from_view",
]
