"""email to CBO staff: link signing keys, used links, overdue reminders sent

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_link_key",
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "email_link_use",
        sa.Column("link_id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("link_id"),
    )
    op.create_table(
        "email_reminder",
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("referral_id", "organization", "stage"),
    )


def downgrade() -> None:
    op.drop_table("email_reminder")
    op.drop_table("email_link_use")
    op.drop_table("email_link_key")
