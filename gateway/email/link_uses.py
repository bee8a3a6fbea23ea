"""Single use: a link acts as ``email-link:<link id>``, and the Task write it makes records
the link as used in that same transaction, so the action and its record commit together.

``record_link_use`` is a ``FhirService`` task listener. A link already recorded makes the
write fail with ``Conflict`` and roll back, even when two requests race (see ``insert_once``).
The actor's ``client_id`` also shows in the Task's Provenance, so the record says which
e-mail's link acted.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from conformance.access import AccessContext
from conformance.errors import Conflict
from gateway.email.link_tokens import LinkClaims
from gateway.email.once import insert_once
from gateway.email.tables import link_use_table
from gateway.fhir.write_context import TaskWrite, WriteContext

CLIENT_PREFIX = "email-link:"
U = link_use_table.c


@dataclass(frozen=True)
class LinkUse:
    status: str
    """The referral status the link's action led to."""
    used_at: int
    """Epoch µs."""


def link_actor(claims: LinkClaims) -> AccessContext:
    """Who acts through a link: its organization, as the client ``email-link:<link id>``."""
    return AccessContext(organization=claims.organization, client_id=CLIENT_PREFIX + claims.link_id)


def record_link_use(ctx: WriteContext, writes: Sequence[TaskWrite]) -> None:
    client_id = ctx.actor.client_id or ""
    if not client_id.startswith(CLIENT_PREFIX) or ctx.actor.organization is None:
        return
    for write in writes:
        values = {
            "link_id": client_id.removeprefix(CLIENT_PREFIX),
            "referral_id": write.stored.id,
            "organization": ctx.actor.organization,
            "status": str(write.current.get("status")),
            "used_at": ctx.now,
        }
        if not insert_once(ctx.connection, link_use_table, values):
            raise Conflict("This e-mail link was already used")


def link_use(connection: Connection, link_id: str) -> LinkUse | None:
    row = connection.execute(select(U.status, U.used_at).where(U.link_id == link_id)).first()
    return None if row is None else LinkUse(row.status, row.used_at)
