"""partners: policy, API keys, idempotency records

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_record",
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization", "key"),
    )
    op.create_table(
        "partner",
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("consent_required", sa.Boolean(), nullable=False),
        sa.Column("auto_decline_at_capacity", sa.Boolean(), nullable=False),
        sa.Column("respond_within_hours", sa.Integer(), nullable=True),
        sa.Column("close_within_days", sa.Integer(), nullable=True),
        sa.Column("webhook_url", sa.String(length=2048), nullable=True),
        sa.Column("webhook_secret", sa.String(length=255), nullable=True),
        sa.Column("emails", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("organization"),
    )
    op.create_table(
        "partner_api_key",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("partner_api_key", schema=None) as batch_op:
        batch_op.create_index("ix_partner_api_key_organization", ["organization"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("partner_api_key", schema=None) as batch_op:
        batch_op.drop_index("ix_partner_api_key_organization")

    op.drop_table("partner_api_key")
    op.drop_table("partner")
    op.drop_table("idempotency_record")
