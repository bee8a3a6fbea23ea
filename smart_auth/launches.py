"""EHR launch handles: opaque, hashed, short-lived, single use and bound to one client.

SMART app-launch.html "EHR launch": the ``launch`` value is an opaque handle to the launch
context. Ours is consumed when the authorization code is issued (not at consent, which is shown
and submitted as separate requests), so a handle yields at most one code.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select, update

from smart_auth.credentials import digest, new_secret
from smart_auth.db import now, writing
from smart_auth.tables import launch_table

_L = launch_table.c


@dataclass(frozen=True)
class LaunchContext:
    client_id: str
    username: str
    patient: str | None
    """``Patient/<id>``."""
    encounter: str | None
    """``Encounter/<id>``."""
    fhir_context: tuple[str, ...] = ()


def mint_launch(engine: Engine, context: LaunchContext, *, ttl: int) -> str:
    handle = new_secret()
    with writing(engine) as connection:
        connection.execute(
            insert(launch_table).values(
                launch_hash=digest(handle),
                client_id=context.client_id,
                username=context.username,
                patient=context.patient,
                encounter=context.encounter,
                fhir_context=list(context.fhir_context),
                expires_at=now() + ttl,
            )
        )
    return handle


def find_launch(connection: Connection, handle: str, *, client_id: str) -> LaunchContext | None:
    """The context of an unused, unexpired handle minted for ``client_id``; else None."""
    row = connection.execute(
        select(launch_table).where(
            _L.launch_hash == digest(handle),
            _L.client_id == client_id,
            _L.used_at.is_(None),
            _L.expires_at > now(),
        )
    ).first()
    if row is None:
        return None
    return LaunchContext(
        row.client_id, row.username, row.patient, row.encounter, tuple(row.fhir_context)
    )


def consume_launch(connection: Connection, handle: str, *, client_id: str, at: int) -> bool:
    """Mark the handle used; False if it was used, expired or is another client's."""
    result = connection.execute(
        update(launch_table)
        .where(
            _L.launch_hash == digest(handle),
            _L.client_id == client_id,
            _L.used_at.is_(None),
            _L.expires_at > at,
        )
        .values(used_at=at)
    )
    return result.rowcount == 1
