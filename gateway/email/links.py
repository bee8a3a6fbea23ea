"""``EmailLinks``: make and check the accept/decline links in e-mails, with the signing key
kept in the database so every process, before and after a restart, agrees on it."""

import secrets
import time

from sqlalchemy import Engine, select

from gateway.email.link_tokens import LinkClaims, LinkProblem, read_link, sign_link
from gateway.email.once import insert_once
from gateway.email.tables import link_key_table
from gateway.fhir.write_context import now_us
from gateway.store.engine import read_transaction, write_transaction

ACTION_PATH = "/email-actions"
FIRST_KID = "k1"
K = link_key_table.c


class EmailLinks:
    def __init__(self, engine: Engine, *, public_url: str) -> None:
        self.engine = engine
        self.base = f"{public_url}{ACTION_PATH}"
        self._keys: dict[str, bytes] = {}
        self._signing_kid = ""

    def ensure_key(self) -> None:
        """Create the signing key if this is the first start ever, then load the keys."""
        with write_transaction(self.engine) as connection:
            insert_once(
                connection,
                link_key_table,
                {"kid": FIRST_KID, "secret": secrets.token_hex(32), "created_at": now_us()},
            )
        with read_transaction(self.engine) as connection:
            rows = connection.execute(select(K.kid, K.secret).order_by(K.created_at, K.kid)).all()
        self._keys = {row.kid: bytes.fromhex(row.secret) for row in rows}
        self._signing_kid = rows[-1].kid

    def url(self, claims: LinkClaims) -> str:
        kid = self._ready()
        return f"{self.base}/{sign_link(claims, kid=kid, key=self._keys[kid])}"

    def check(self, token: str, *, now: int | None = None) -> LinkClaims | LinkProblem:
        """The token's claims if Loopgate signed it and it has not expired (``now``: epoch s)."""
        self._ready()
        when = int(time.time()) if now is None else now
        return read_link(token, keys=self._keys, now=when)

    def _ready(self) -> str:
        if not self._signing_kid:
            self.ensure_key()
        return self._signing_kid
