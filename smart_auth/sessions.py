"""Browser sign-in: a server-side session behind an HttpOnly cookie, and CSRF tokens for forms.

The cookie holds a 256-bit secret; the table holds its SHA-256. A browser without a session
still gets a secret cookie, from which its CSRF token is derived, so even the login form is
protected (login CSRF). Signing in issues a new secret (no session fixation).
"""

import re
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from starlette.requests import Request
from starlette.responses import Response

from smart_auth.credentials import csrf_token, digest, new_secret, same
from smart_auth.db import now, reading, writing
from smart_auth.registry import User, get_user
from smart_auth.tables import session_table

COOKIE = "loopgate_session"
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")
_S = session_table.c


@dataclass(frozen=True)
class Browser:
    secret: str
    user: User | None
    needs_cookie: bool
    """The secret is new: the response must set the cookie."""

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret)

    def csrf_ok(self, submitted: str | None) -> bool:
        return submitted is not None and same(submitted, self.csrf)


class Sessions:
    def __init__(self, *, engine: Engine, ttl: int, secure: bool) -> None:
        self._engine = engine
        self._ttl = ttl
        self._secure = secure

    def browser(self, request: Request) -> Browser:
        secret = request.cookies.get(COOKIE, "")
        if not _SECRET.match(secret):
            return Browser(new_secret(), None, needs_cookie=True)
        with reading(self._engine) as connection:
            row = connection.execute(
                select(_S.username).where(_S.session_hash == digest(secret), _S.expires_at > now())
            ).first()
            user = get_user(connection, row.username) if row is not None else None
        return Browser(secret, user, needs_cookie=False)

    def sign_in(self, user: User, *, previous: str) -> Browser:
        secret = new_secret()
        at = now()
        with writing(self._engine) as connection:
            connection.execute(delete(session_table).where(_S.session_hash == digest(previous)))
            connection.execute(
                insert(session_table).values(
                    session_hash=digest(secret),
                    username=user.username,
                    created_at=at,
                    expires_at=at + self._ttl,
                )
            )
        return Browser(secret, user, needs_cookie=True)

    def sign_out(self, secret: str) -> None:
        with writing(self._engine) as connection:
            connection.execute(delete(session_table).where(_S.session_hash == digest(secret)))

    def set_cookie(self, response: Response, browser: Browser) -> None:
        if browser.needs_cookie:
            response.set_cookie(
                COOKIE,
                browser.secret,
                max_age=self._ttl,
                path="/",
                httponly=True,
                secure=self._secure,
                samesite="lax",
            )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, secure=self._secure, samesite="lax")
