"""outbox_pending_key: partial indexes on pending messages, for the claim

The claim finds the first pending message of every ordering key by skipping through the first
from one key to the next, and pending messages with no ordering key through the second;
delivered and dead messages, which outnumber pending ones, are in neither.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("status = 'pending'")
_PENDING_UNORDERED = sa.text("status = 'pending' AND ordering_key IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_message_pending_key",
        "outbox_message",
        ["kind", "destination", "ordering_key", "seq"],
        unique=False,
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )
    op.create_index(
        "ix_outbox_message_pending_unordered",
        "outbox_message",
        ["ordering_key", "next_attempt_at", "seq"],
        unique=False,
        sqlite_where=_PENDING_UNORDERED,
        postgresql_where=_PENDING_UNORDERED,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_message_pending_unordered", table_name="outbox_message")
    op.drop_index("ix_outbox_message_pending_key", table_name="outbox_message")
