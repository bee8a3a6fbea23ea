"""The referral e-mails to CBO staff, as plain text and HTML alternatives of one message.

E-mail is not a safe channel for health information: it is stored unencrypted on servers
Loopgate does not control, forwarded, and read on shared screens. So an e-mail says what a
referral needs, how urgent it is, who sent it and by when to answer, and never anything about
the client (no name, birth date, contact, address or clinical reason). It is built from a
``ReferralSummary``, which has no field that could carry such details.
"""

import html
import textwrap
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal

from fhir_mappings import ReferralView

Letter = Literal["new", "respond-overdue", "close-overdue"]
"""A new referral; one still unanswered past its respond-by; one accepted but not closed by
its close-by."""


@dataclass(frozen=True)
class ReferralSummary:
    """What an e-mail or a link page may say about a referral: nothing about the client."""

    referral_id: str
    status: str
    organization: str | None
    """The receiving organization's name."""
    referrer: str | None
    """The referring organization's name."""
    need: str | None
    service: str | None
    priority: str | None
    due: datetime | date | None
    """Respond by (requested) or close by (accepted or later)."""


def summary_from_view(view: ReferralView, *, organization: str | None) -> ReferralSummary:
    """Pick the PHI-free parts of a referral view; ``view.client`` and ``view.reasons`` are
    deliberately never read."""
    need = (view.need.display or view.need.code) if view.need else None
    service = (view.service.text or view.service.display) if view.service else None
    return ReferralSummary(
        referral_id=view.id,
        status=view.status,
        organization=organization,
        referrer=view.referrer.organization or view.referrer.display,
        need=need,
        service=service,
        priority=view.priority,
        due=_parse_due(view.due),
    )


def _parse_due(value: str | None) -> datetime | date | None:
    if not value:
        return None
    try:
        if "T" in value:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return date.fromisoformat(value)
    except ValueError:  # a partial date (2025-03): too vague to show as a deadline
        return None


def format_when(value: datetime | date, zone: tzinfo) -> str:
    """``Tue 11 Mar 2025, 09:06 CDT`` (or ``Tue 11 Mar 2025`` for a date) in ``zone``."""
    if isinstance(value, datetime):
        local = value.astimezone(zone)
        return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname() or ''}".strip()
    return f"{value:%a} {value.day} {value:%b %Y}"


@dataclass(frozen=True)
class ActionLinks:
    accept: str
    decline: str
    expires: datetime


@dataclass(frozen=True)
class _Content:
    subject: str
    heading: str
    intro: str
    facts: list[tuple[str, str]]
    actions: list[tuple[str, str]]
    """(label, url)"""
    notes: list[str]
    footer: str


def referral_email(
    letter: Letter,
    summary: ReferralSummary,
    *,
    sender: str,
    recipient: str,
    links: ActionLinks | None,
    zone: tzinfo,
    message_id: str,
    now: datetime,
) -> EmailMessage:
    """One message with a plain-text part and an HTML alternative saying the same.

    ``message_id`` is the same on every retry, so a receiving system can drop a repeat.
    """
    content = _content(letter, summary, links=links, zone=zone)
    message = EmailMessage()
    message["Subject"] = _one_line(content.subject)
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    # RFC 3834: machine-sent; out-of-office replies should not answer it
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(_text(content))
    message.add_alternative(_html(content), subtype="html")
    return message


_PRIORITIES = {
    "routine": "Routine",
    "urgent": "Urgent",
    "asap": "As soon as possible",
    "stat": "Immediately",
}


def _content(
    letter: Letter, summary: ReferralSummary, *, links: ActionLinks | None, zone: tzinfo
) -> _Content:
    referrer = summary.referrer or "A referring organization"
    to = summary.organization or "your organization"
    what = summary.need or summary.service or "a social need"
    due = format_when(summary.due, zone) if summary.due else None
    priority = _PRIORITIES.get(summary.priority or "", summary.priority or "")
    urgent = summary.priority in ("urgent", "asap", "stat")
    facts = [
        ("Need", summary.need),
        ("Service", summary.service),
        ("Priority", priority or None),
        ("Close by" if letter == "close-overdue" else "Respond by", due),
        ("Referred by", summary.referrer),
        ("Referral", summary.referral_id),
    ]
    actions: list[tuple[str, str]] = []
    notes: list[str] = []
    if links is not None:
        actions = [("Accept the referral", links.accept), ("Decline it", links.decline)]
        notes.append(
            "Each link opens a page where you confirm: nothing changes until you press the "
            f"button there. They work once, until {format_when(links.expires, zone)}. Please "
            "do not forward this e-mail: anyone with the links can answer for your organization."
        )
    if letter == "new":
        subject = f"{'Urgent: new' if urgent else 'New'} referral: {what}"
        if due:
            subject += f" (answer by {due})"
        heading = f"New referral for {to}"
        intro = f"{referrer} has referred a client to {to} and is waiting for your answer."
    elif letter == "respond-overdue":
        subject = f"Reminder: referral waiting for your answer: {what}"
        heading = "A referral is waiting for your answer"
        intro = (
            f"{referrer} referred a client to {to}, and the time to answer has passed. "
            "Please accept or decline it, so the client can be helped elsewhere if need be."
        )
    else:
        subject = f"Reminder: referral past its close-by date: {what}"
        heading = "A referral is past its close-by date"
        intro = (
            f"{to} accepted this referral from {referrer}, and it was due to be closed by now. "
            "Please record how it went (or what is holding it up) in your referral system."
        )
    notes.append(
        "For the client's privacy this e-mail has no client details; you will find them in "
        "your referral system."
    )
    footer = (
        f"Sent by Loopgate because this address receives referral e-mail for {to}. "
        "Please do not reply to this message."
    )
    return _Content(
        subject=subject,
        heading=heading,
        intro=intro,
        facts=[(label, value) for label, value in facts if value],
        actions=actions,
        notes=notes,
        footer=footer,
    )


def _one_line(value: str) -> str:
    """Header values never carry a line break (header injection) and stay readable."""
    return " ".join(value.split())[:200]


def _text(content: _Content) -> str:
    wrap = textwrap.TextWrapper(width=72, break_long_words=False, break_on_hyphens=False)
    width = max((len(label) for label, _ in content.facts), default=0) + 2
    lines = [content.heading, "", *wrap.wrap(content.intro), ""]
    lines += [f"  {label + ':':<{width}}{value}" for label, value in content.facts]
    for label, url in content.actions:
        lines += ["", f"{label}:", url]
    for note in content.notes:
        lines += ["", *wrap.wrap(note)]
    lines += ["", "--", *wrap.wrap(content.footer)]
    return "\n".join(lines) + "\n"


_BUTTON = (
    "display:inline-block;padding:12px 20px;margin:0 8px 8px 0;border-radius:6px;"
    "font-weight:bold;text-decoration:none;"
)
_BUTTON_COLORS = ("background:#1a6b3c;color:#ffffff;", "background:#eeeeee;color:#222222;")


def _html(content: _Content) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><th style="text-align:left;padding:4px 12px 4px 0;vertical-align:top;'
        f'color:#555;font-weight:normal">{e(label)}</th>'
        f'<td style="padding:4px 0">{e(value)}</td></tr>'
        for label, value in content.facts
    )
    buttons = "".join(
        f'<a href="{e(url)}" style="{_BUTTON}{_BUTTON_COLORS[min(i, 1)]}">{e(label)}</a>'
        for i, (label, url) in enumerate(content.actions)
    )
    notes = "".join(f'<p style="color:#555;font-size:14px">{e(note)}</p>' for note in content.notes)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(content.subject)}</title></head>"
        '<body style="margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;'
        'font-size:16px;line-height:1.4;color:#222">'
        '<div style="max-width:560px">'
        f'<h1 style="font-size:20px;margin:0 0 12px">{e(content.heading)}</h1>'
        f"<p>{e(content.intro)}</p>"
        f'<table role="presentation" style="border-collapse:collapse;margin:12px 0">{rows}</table>'
        f'<p style="margin:20px 0 12px">{buttons}</p>'
        f"{notes}"
        '<hr style="border:0;border-top:1px solid #ddd;margin:20px 0">'
        f'<p style="color:#777;font-size:12px">{e(content.footer)}</p>'
        "</div></body></html>\n"
    )
