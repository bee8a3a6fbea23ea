"""Registered clients and users, read from smart_auth's tables into plain values."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from smart_auth.tables import client_table, user_table

BACKEND = "backend"
PUBLIC = "public"
SYMMETRIC = "confidential-symmetric"
ASYMMETRIC = "confidential-asymmetric"
CLIENT_TYPES = (BACKEND, PUBLIC, SYMMETRIC, ASYMMETRIC)


@dataclass(frozen=True)
class Client:
    client_id: str
    client_type: str
    organization: str | None
    redirect_uris: tuple[str, ...]
    launch_uri: str | None
    scope: str
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    secret_hash: str | None

    @property
    def is_app(self) -> bool:
        """Apps use the authorization-code flow; backend clients only client_credentials."""
        return self.client_type != BACKEND

    @property
    def uses_keys(self) -> bool:
        """Authenticates with private_key_jwt (SMART client-confidential-asymmetric)."""
        return self.client_type in (BACKEND, ASYMMETRIC)


@dataclass(frozen=True)
class User:
    username: str
    fhir_user: str
    organization: str
    roles: tuple[str, ...]
    password_hash: str


def get_client(connection: Connection, client_id: str) -> Client | None:
    row = connection.execute(
        select(client_table).where(client_table.c.client_id == client_id)
    ).first()
    if row is None:
        return None
    return Client(
        client_id=row.client_id,
        client_type=row.client_type,
        organization=row.organization,
        redirect_uris=tuple(row.redirect_uris),
        launch_uri=row.launch_uri,
        scope=row.scope,
        jwks=row.jwks,
        jwks_uri=row.jwks_uri,
        secret_hash=row.secret_hash,
    )


def get_user(connection: Connection, username: str) -> User | None:
    row = connection.execute(select(user_table).where(user_table.c.username == username)).first()
    if row is None:
        return None
    return User(
        username=row.username,
        fhir_user=row.fhir_user,
        organization=row.organization,
        roles=tuple(row.roles),
        password_hash=row.password_hash,
    )
