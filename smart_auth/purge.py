"""Opportunistic clean-up of expired rows, at most once a minute per process.

Codes are kept until their family's refresh tokens could have expired, so a late replay of a
code still revokes what it produced; jtis until their assertion's ``exp`` plus clock skew.
"""

import logging
import time

from sqlalchemy import Engine, delete, or_
from sqlalchemy.exc import SQLAlchemyError

from smart_auth.db import now, writing
from smart_auth.tables import code_table, jti_table, launch_table, session_table, token_table

log = logging.getLogger("loopgate.smart_auth")
INTERVAL_SECONDS = 60.0


class Purger:
    def __init__(self, *, engine: Engine, refresh_token_ttl: int) -> None:
        self._engine = engine
        self._refresh_token_ttl = refresh_token_ttl
        self._next = 0.0

    def maybe_purge(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + INTERVAL_SECONDS
        try:
            self.purge()
        except SQLAlchemyError as error:  # clean-up may fail; the request it rides on may not
            log.warning("smart_auth purge failed: %s", type(error).__name__)

    def purge(self) -> None:
        at = now()
        t = token_table.c
        with writing(self._engine) as connection:
            connection.execute(delete(jti_table).where(jti_table.c.expires_at < at))
            connection.execute(delete(session_table).where(session_table.c.expires_at < at))
            connection.execute(delete(launch_table).where(launch_table.c.expires_at < at))
            connection.execute(
                delete(code_table).where(code_table.c.expires_at + self._refresh_token_ttl < at)
            )
            connection.execute(
                delete(token_table).where(
                    t.expires_at < at,
                    or_(t.refresh_expires_at.is_(None), t.refresh_expires_at < at),
                )
            )
