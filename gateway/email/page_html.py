"""The small HTML pages an e-mail link opens: confirm, done, or why not (pure).

Every value is escaped with ``html.escape``; pages load nothing from elsewhere and read well
on a phone. Like the e-mail, they say nothing about the client.
"""

from dataclasses import dataclass
from datetime import tzinfo
from html import escape

from adapters.email import ReferralSummary, format_when

STATUS_WORDS = {
    "requested": "waiting for an answer",
    "accepted": "accepted",
    "rejected": "declined",
    "cancelled": "cancelled by the referrer",
    "in-progress": "in progress",
    "on-hold": "on hold",
    "completed": "completed",
    "failed": "closed without the service",
    "entered-in-error": "withdrawn as sent in error",
}

_STYLE = """
body{margin:0;padding:16px;font-family:system-ui,-apple-system,Segoe UI,Roboto,Arial,sans-serif;
font-size:17px;line-height:1.45;color:#222;background:#fafafa}
main{max-width:560px;margin:0 auto;background:#fff;padding:20px;border-radius:8px;
border:1px solid #e3e3e3}
h1{font-size:22px;margin:0 0 12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 14px;margin:16px 0}
dt{color:#555}dd{margin:0}
label{display:block;font-weight:600;margin:14px 0 6px}
select,textarea{width:100%;box-sizing:border-box;font:inherit;padding:10px;border:1px solid #999;
border-radius:6px;background:#fff}
button{display:block;width:100%;margin-top:18px;padding:14px;font:inherit;font-weight:700;
border:0;border-radius:6px;color:#fff;background:#1a6b3c}
button.decline{background:#9b2c2c}
.note{color:#555;font-size:15px}
.error{color:#9b2c2c;font-weight:600}
"""


@dataclass(frozen=True)
class Reason:
    code: str
    display: str


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{escape(title)} · Loopgate</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>\n"
    )


def notice_page(title: str, *paragraphs: str) -> str:
    return page(title, "".join(f"<p>{escape(p)}</p>" for p in paragraphs))


def facts(summary: ReferralSummary, zone: tzinfo) -> str:
    due_label = "Respond by" if summary.status == "requested" else "Close by"
    rows = [
        ("Need", summary.need),
        ("Service", summary.service),
        ("Priority", summary.priority),
        (due_label, format_when(summary.due, zone) if summary.due else None),
        ("Referred by", summary.referrer),
        ("Referral", summary.referral_id),
    ]
    items = "".join(
        f"<dt>{escape(label)}</dt><dd>{escape(value)}</dd>" for label, value in rows if value
    )
    return f"<dl>{items}</dl>"


def accept_form(summary: ReferralSummary, *, form_url: str, zone: tzinfo) -> str:
    referrer = summary.referrer or "The referrer"
    body = (
        f"<p>{escape(referrer)} referred a client to "
        f"{escape(summary.organization or 'your organization')}.</p>"
        f"{facts(summary, zone)}"
        f'<form method="post" action="{escape(form_url)}">'
        "<button type=submit>Accept referral</button></form>"
        f'<p class="note">Accepting tells {escape(referrer)} that you will contact the client. '
        "The client's details are in your referral system, not in e-mail.</p>"
    )
    return page("Accept this referral?", body)


def decline_form(
    summary: ReferralSummary,
    *,
    form_url: str,
    zone: tzinfo,
    reasons: list[Reason],
    chosen: str = "",
    text: str = "",
    error: str | None = None,
) -> str:
    referrer = summary.referrer or "the referrer"
    options = '<option value="">Choose a reason</option>' + "".join(
        f'<option value="{escape(r.code)}"{" selected" if r.code == chosen else ""}>'
        f"{escape(r.display)}</option>"
        for r in reasons
    )
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (
        f"{facts(summary, zone)}{problem}"
        f'<form method="post" action="{escape(form_url)}">'
        f'<label for="reason">Why are you declining?</label>'
        f'<select id="reason" name="reason" required>{options}</select>'
        f'<label for="text">Note to {escape(referrer)} (optional; needed for “Other”)</label>'
        f'<textarea id="text" name="text" rows="3" maxlength="1000">{escape(text)}</textarea>'
        '<button type=submit class="decline">Decline referral</button></form>'
        f'<p class="note">{escape(referrer)} sees your reason and can refer the client '
        "elsewhere.</p>"
    )
    return page("Decline this referral?", body)


def done_page(summary: ReferralSummary, *, status: str, zone: tzinfo) -> str:
    referrer = summary.referrer or "The referrer"
    if status == "accepted":
        return page(
            "Referral accepted",
            f"<p>{escape(referrer)} can now see that you accepted it.</p>{facts(summary, zone)}"
            "<p>Next, contact the client: their details are in your referral system.</p>",
        )
    return page(
        "Referral declined",
        f"<p>{escape(referrer)} can now see that you declined it, and why.</p>"
        f"{facts(summary, zone)}",
    )
