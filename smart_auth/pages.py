"""The HTML pages of sign-in: login, consent (with the patient picker), errors and logout.

Every value is HTML-escaped; pages are never cached and may not be framed (clickjacking on
consent). Forms carry the CSRF token of the browser (``smart_auth.sessions``).
"""

from html import escape

from starlette.responses import HTMLResponse

from smart_auth.patients import PatientChoice

_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin:.8rem 0 .2rem}input,select{width:100%;padding:.4rem}"
    "button{margin:1rem .5rem 0 0;padding:.5rem 1.2rem}.error{color:#a00}"
)


def _page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Loopgate</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def login_page(*, csrf: str, next_url: str, failed: bool = False) -> HTMLResponse:
    message = '<p class="error">The username or password is wrong.</p>' if failed else ""
    return _page(
        "Sign in",
        f'{message}<form method="post" action="/auth/login">'
        f"{_hidden('csrf', csrf)}{_hidden('next', next_url)}"
        '<label for="username">Username</label>'
        '<input id="username" name="username" autocomplete="username" required autofocus>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" '
        'autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>',
    )


def consent_page(
    *,
    csrf: str,
    client_id: str,
    scopes: list[str],
    params: tuple[tuple[str, str], ...],
    username: str,
    launch_patient: str | None,
    patients: list[PatientChoice] | None,
    search: str,
) -> HTMLResponse:
    """Approve or deny; ``patients`` is not None when a patient must be picked."""
    carried = "".join(_hidden(name, value) for name, value in params)
    items = "".join(f"<li><code>{escape(scope)}</code></li>" for scope in scopes)
    picker = ""
    if patients is not None:
        options = "".join(
            f'<option value="{escape(p.reference)}">{escape(p.display)}</option>' for p in patients
        )
        picker = (
            '<label for="patient">Patient</label>'
            f'<select id="patient" name="patient" required>{options}</select>'
        )
        if not patients:
            picker += '<p class="error">No patient matches.</p>'
    elif launch_patient is not None:
        picker = f"<p>Patient in context: <code>{escape(launch_patient)}</code></p>"
    search_form = ""
    if patients is not None:
        search_form = (
            '<form method="get" action="/auth/authorize">'
            f"{carried}"
            '<label for="patient_search">Find a patient</label>'
            f'<input id="patient_search" name="patient_search" value="{escape(search)}">'
            '<button type="submit">Search</button></form>'
        )
    return _page(
        "Allow access?",
        f"<p>Signed in as <b>{escape(username)}</b>.</p>"
        f"<p>The application <b>{escape(client_id)}</b> asks for:</p><ul>{items}</ul>"
        f"{search_form}"
        f'<form method="post" action="/auth/consent">{_hidden("csrf", csrf)}{carried}{picker}'
        '<button type="submit" name="decision" value="approve">Allow</button>'
        '<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>'
        "</form>",
    )


def error_page(message: str, *, status: int = 400) -> HTMLResponse:
    return _page("Cannot continue", f'<p class="error">{escape(message)}</p>', status=status)


def logout_page(*, csrf: str) -> HTMLResponse:
    return _page(
        "Sign out",
        f'<form method="post" action="/auth/logout">{_hidden("csrf", csrf)}'
        '<button type="submit">Sign out</button></form>',
    )


def signed_out_page() -> HTMLResponse:
    return _page("Signed out", "<p>You are signed out.</p>")
