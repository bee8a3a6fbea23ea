"""One-time tickets to open an event stream from a browser, whose ``EventSource`` cannot send
an ``Authorization`` header: usable once, within ``TICKET_TTL_S``, for the organization of the
credential that asked for it. Only the ticket's SHA-256 is stored."""

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, update

from gateway.live.tables import ticket_table

TICKET_TTL_S = 60
_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_T = ticket_table.c


@dataclass(frozen=True)
class TicketHolder:
    organization: str
    client_id: str | None


def issue_ticket(
    connection: Connection, *, organization: str, client_id: str | None, now: int
) -> str:
    ticket = secrets.token_urlsafe(32)
    connection.execute(
        insert(ticket_table).values(
            ticket_hash=_digest(ticket),
            organization=organization,
            client_id=client_id,
            expires_at=now + TICKET_TTL_S * 1_000_000,
        )
    )
    return ticket


def looks_like_ticket(value: str) -> bool:
    """Whether ``value`` could be a ticket at all (checked before touching the database)."""
    return bool(_SHAPE.match(value))


def redeem_ticket(connection: Connection, ticket: str, *, now: int) -> TicketHolder | None:
    """Use the ticket up; None when it is malformed, unknown, used or expired. The update
    decides between two processes redeeming it at once: one of them matches the row."""
    if not looks_like_ticket(ticket):
        return None
    row = connection.execute(
        update(ticket_table)
        .where(_T.ticket_hash == _digest(ticket), _T.used_at.is_(None), _T.expires_at > now)
        .values(used_at=now)
        .returning(_T.organization, _T.client_id)
    ).first()
    return None if row is None else TicketHolder(row.organization, row.client_id)


def purge_tickets(connection: Connection, *, now: int) -> int:
    return int(connection.execute(delete(ticket_table).where(_T.expires_at < now)).rowcount)


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()
