"""smart_auth: clients, users, sessions, launches, codes, tokens, jtis and signing keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 14:21:32.111659
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "smart_auth_code",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("nonce", sa.String(length=512), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    with op.batch_alter_table("smart_auth_code", schema=None) as batch_op:
        batch_op.create_index("ix_smart_auth_code_expires", ["expires_at"], unique=False)

    op.create_table(
        "smart_client",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("client_type", sa.String(length=32), nullable=False),
        sa.Column("organization", sa.String(length=128), nullable=True),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("launch_uri", sa.String(length=2048), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("jwks_uri", sa.String(length=2048), nullable=True),
        sa.Column("secret_hash", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "smart_jti",
        sa.Column("iss", sa.String(length=128), nullable=False),
        sa.Column("jti", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("iss", "jti"),
    )
    with op.batch_alter_table("smart_jti", schema=None) as batch_op:
        batch_op.create_index("ix_smart_jti_expires", ["expires_at"], unique=False)

    op.create_table(
        "smart_launch",
        sa.Column("launch_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("patient", sa.String(length=128), nullable=True),
        sa.Column("encounter", sa.String(length=128), nullable=True),
        sa.Column("fhir_context", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("launch_hash"),
    )
    with op.batch_alter_table("smart_launch", schema=None) as batch_op:
        batch_op.create_index("ix_smart_launch_expires", ["expires_at"], unique=False)

    op.create_table(
        "smart_session",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_hash"),
    )
    with op.batch_alter_table("smart_session", schema=None) as batch_op:
        batch_op.create_index("ix_smart_session_expires", ["expires_at"], unique=False)

    op.create_table(
        "smart_signing_key",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("private_jwk", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "smart_token",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("access_hash", sa.String(length=64), nullable=False),
        sa.Column("refresh_hash", sa.String(length=64), nullable=True),
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("grant_type", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=True),
        sa.Column("fhir_user", sa.String(length=128), nullable=True),
        sa.Column("organization", sa.String(length=128), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("aud", sa.String(length=2048), nullable=False),
        sa.Column("id_token_issued", sa.Boolean(), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("refresh_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("refresh_used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("access_hash", name="uq_smart_token_access_hash"),
        sa.UniqueConstraint("refresh_hash", name="uq_smart_token_refresh_hash"),
    )
    with op.batch_alter_table("smart_token", schema=None) as batch_op:
        batch_op.create_index("ix_smart_token_expires", ["expires_at"], unique=False)
        batch_op.create_index("ix_smart_token_family", ["family_id"], unique=False)

    op.create_table(
        "smart_user",
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("fhir_user", sa.String(length=128), nullable=False),
        sa.Column("organization", sa.String(length=128), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )


def downgrade() -> None:
    op.drop_table("smart_user")
    with op.batch_alter_table("smart_token", schema=None) as batch_op:
        batch_op.drop_index("ix_smart_token_family")
        batch_op.drop_index("ix_smart_token_expires")

    op.drop_table("smart_token")
    op.drop_table("smart_signing_key")
    with op.batch_alter_table("smart_session", schema=None) as batch_op:
        batch_op.drop_index("ix_smart_session_expires")

    op.drop_table("smart_session")
    with op.batch_alter_table("smart_launch", schema=None) as batch_op:
        batch_op.drop_index("ix_smart_launch_expires")

    op.drop_table("smart_launch")
    with op.batch_alter_table("smart_jti", schema=None) as batch_op:
        batch_op.drop_index("ix_smart_jti_expires")

    op.drop_table("smart_jti")
    op.drop_table("smart_client")
    with op.batch_alter_table("smart_auth_code", schema=None) as batch_op:
        batch_op.drop_index("ix_smart_auth_code_expires")

    op.drop_table("smart_auth_code")
