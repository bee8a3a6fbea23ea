"""E-mail to CBO staff: a message per address for each new referral and one reminder per
overdue referral, with signed, expiring, single-use links to accept or decline that open a
confirmation page first. No client details ever go into an e-mail (``adapters.email``)."""

from gateway.email.delivery import email_handler, email_zone, smtp_config
from gateway.email.link_tokens import LinkClaims
from gateway.email.link_uses import record_link_use
from gateway.email.links import EmailLinks
from gateway.email.notify import EMAIL_KIND, new_referral_sink
from gateway.email.overdue import OverdueReminders
from gateway.email.pages import email_action_router

__all__ = [
    "EMAIL_KIND",
    "EmailLinks",
    "LinkClaims",
    "OverdueReminders",
    "email_action_router",
    "email_handler",
    "email_zone",
    "new_referral_sink",
    "record_link_use",
    "smtp_config",
]
