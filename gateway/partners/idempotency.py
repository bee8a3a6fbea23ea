"""``Idempotency-Key``: a retried POST gets the first answer instead of acting twice.

The record is written in the same database transaction as the action it answers, so an action
and its record commit together (https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/).
"""

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from conformance.errors import BusinessRuleViolation
from gateway.fhir.write_context import now_us
from gateway.partners.tables import idempotency_table

I = idempotency_table.c  # noqa: E741
KEEP_S = 24 * 3600


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    body: str


def stored_answer(
    connection: Connection, organization: str, key: str, request_fingerprint: str
) -> StoredAnswer | None:
    """The answer already given to this key, or None; the same key for another request is 422."""
    row = connection.execute(
        select(I.fingerprint, I.status_code, I.body, I.created_at).where(
            I.organization == organization, I.key == key
        )
    ).first()
    if row is None or row.created_at < now_us() - KEEP_S * 1_000_000:
        return None
    if row.fingerprint != request_fingerprint:
        raise BusinessRuleViolation(
            "This Idempotency-Key was used for a different request; use a new key"
        )
    return StoredAnswer(row.status_code, row.body)


def store_answer(
    connection: Connection,
    organization: str,
    key: str,
    request_fingerprint: str,
    answer: StoredAnswer,
) -> None:
    # this key's old answer, and the organization's answers past keeping
    expired = now_us() - KEEP_S * 1_000_000
    connection.execute(
        delete(idempotency_table).where(
            I.organization == organization, (I.key == key) | (I.created_at < expired)
        )
    )
    connection.execute(
        insert(idempotency_table).values(
            organization=organization,
            key=key,
            fingerprint=request_fingerprint,
            status_code=answer.status_code,
            body=answer.body,
            created_at=now_us(),
        )
    )
