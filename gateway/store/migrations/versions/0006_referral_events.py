"""live updates: referral events per organization, their sequence, stream tickets

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral_event",
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("previous_status", sa.String(length=32), nullable=True),
        sa.Column("changed_by", sa.String(length=255), nullable=True),
        sa.Column("message_number", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization", "seq"),
    )
    op.create_index("ix_referral_event_created", "referral_event", ["created_at"])
    op.create_table(
        "referral_event_sequence",
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization"),
    )
    op.create_table(
        "event_stream_ticket",
        sa.Column("ticket_hash", sa.String(length=64), nullable=False),
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("ticket_hash"),
    )
    op.create_index("ix_event_stream_ticket_expires", "event_stream_ticket", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_event_stream_ticket_expires", table_name="event_stream_ticket")
    op.drop_table("event_stream_ticket")
    op.drop_table("referral_event_sequence")
    op.drop_index("ix_referral_event_created", table_name="referral_event")
    op.drop_table("referral_event")
