"""task_party_inbox: each Task's lastUpdated beside its owner and status, in one index

A CBO polls its inbox with ``Task?owner=Organization/x&status=requested&_lastUpdated=gt…``.
With ``(owner_org, status, last_updated)`` in one index, the candidates are one range scan
instead of the intersection of every requested Task with every recent one. The new index
starts with the old ``(owner_org, status)`` one, which it replaces.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = sa.text(
    "UPDATE task_party SET last_updated = COALESCE(("
    "SELECT resource.last_updated FROM resource "
    "WHERE resource.resource_type = 'Task' AND resource.id = task_party.task_id), 0)"
)


def upgrade() -> None:
    with op.batch_alter_table("task_party", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_updated", sa.BigInteger(), nullable=True))
    op.execute(_BACKFILL)
    # a task_party row is written with its Task's current row, so 0 (the epoch) is never kept
    with op.batch_alter_table("task_party", schema=None) as batch_op:
        batch_op.alter_column("last_updated", existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_index("ix_task_party_owner")
        batch_op.create_index(
            "ix_task_party_owner_status_updated",
            ["owner_org", "status", "last_updated"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("task_party", schema=None) as batch_op:
        batch_op.drop_index("ix_task_party_owner_status_updated")
        batch_op.create_index("ix_task_party_owner", ["owner_org", "status"], unique=False)
        batch_op.drop_column("last_updated")
