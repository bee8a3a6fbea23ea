"""task_party_owner_ref: each Task's owner reference as written, under the inbox index

``owner_org`` is the owner's *organization* (a PractitionerRole owner counts for its
organization), so an inbox poll narrowed by it still had to check every candidate's
``owner`` index row. ``owner_ref`` is the reference itself, what ``owner=`` matches, so the
poll's owner, status and ``_lastUpdated`` are all answered by one range of
``(owner_ref, status, last_updated)``. Stored Tasks take it from their ``owner`` index row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Task.owner is 0..1, so a Task has at most one local ``owner`` index row
_BACKFILL = sa.text(
    "UPDATE task_party SET owner_ref = ("
    "SELECT search_reference.target_type || '/' || search_reference.target_id "
    "FROM search_reference "
    "WHERE search_reference.resource_type = 'Task' "
    "AND search_reference.resource_id = task_party.task_id "
    "AND search_reference.param = 'owner' AND search_reference.target_base = '')"
)


def upgrade() -> None:
    with op.batch_alter_table("task_party", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_ref", sa.String(length=255), nullable=True))
    op.execute(_BACKFILL)
    with op.batch_alter_table("task_party", schema=None) as batch_op:
        batch_op.create_index(
            "ix_task_party_inbox", ["owner_ref", "status", "last_updated"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("task_party", schema=None) as batch_op:
        batch_op.drop_index("ix_task_party_inbox")
        batch_op.drop_column("owner_ref")
