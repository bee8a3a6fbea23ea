"""Provision users and clients from the operator's file: validate everything, then upsert.

Idempotent: a password or client secret that still verifies against its stored hash is not
re-hashed, so applying the same file twice changes no row. Rows absent from the file are left
alone. Errors name the first bad field by its path (``clients[1].jwks_uri: …``) and never
quote a value, since values may be secrets.
"""

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, Engine, insert, select, update

from smart_auth.credentials import hash_password, verify_password
from smart_auth.db import writing
from smart_auth.jose import jwks_problem
from smart_auth.registry import ASYMMETRIC, BACKEND, SYMMETRIC
from smart_auth.scopes import MalformedScope, parse_scopes
from smart_auth.settings import is_allowed_url
from smart_auth.tables import client_table, user_table

_FHIR_USER = re.compile(
    r"^(Practitioner|PractitionerRole|Patient|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}$"
)
_ORGANIZATION = r"^Organization/[A-Za-z0-9\-.]{1,64}$"
_NAME = r"^[A-Za-z0-9._~@-]{1,128}$"


class ProvisioningError(ValueError):
    """The provisioning input is invalid; the message names the first bad field."""


class UserSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    username: str = Field(pattern=_NAME)
    password: str = Field(min_length=8, max_length=1024)
    fhir_user: str = Field(pattern=_FHIR_USER.pattern)
    organization: str = Field(pattern=_ORGANIZATION)
    roles: list[Literal["clinician", "cbo-staff", "admin"]] = Field(default_factory=list)


class ClientSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    client_id: str = Field(pattern=_NAME)
    type: Literal["backend", "public", "confidential-symmetric", "confidential-asymmetric"]
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = Field(default=None, max_length=2048)
    client_secret: str | None = Field(default=None, min_length=32, max_length=1024)
    redirect_uris: list[str] = Field(default_factory=list)
    launch_uri: str | None = Field(default=None, max_length=2048)
    scope: str = Field(min_length=1, max_length=2048)
    organization: str | None = Field(default=None, pattern=_ORGANIZATION)


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[UserSpec]
    clients: list[ClientSpec]


def validate(users: list[dict[str, Any]], clients: list[dict[str, Any]]) -> _Input:
    """Parse and check both lists; raise ProvisioningError naming the first problem."""
    try:
        parsed = _Input.model_validate({"users": users, "clients": clients})
    except ValidationError as error:
        first = error.errors()[0]
        raise ProvisioningError(f"{_path(first['loc'])}: {first['msg']}") from None
    _check_unique([u.username for u in parsed.users], "users", "username")
    _check_unique([c.client_id for c in parsed.clients], "clients", "client_id")
    for index, client in enumerate(parsed.clients):
        problem = _client_problem(client)
        if problem is not None:
            field, message = problem
            raise ProvisioningError(f"clients[{index}].{field}: {message}")
    return parsed


def _path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _check_unique(values: list[str], section: str, field: str) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise ProvisioningError(f"{section}[{index}].{field}: duplicate")
        seen.add(value)


def _client_problem(client: ClientSpec) -> tuple[str, str] | None:
    """Cross-field rules of one client, as (field, message)."""
    uses_keys = client.type in (BACKEND, ASYMMETRIC)
    if uses_keys and (client.jwks is None) == (client.jwks_uri is None):
        return "jwks", f"a {client.type} client needs exactly one of jwks and jwks_uri"
    if not uses_keys and (client.jwks is not None or client.jwks_uri is not None):
        return "jwks", f"a {client.type} client has no keys"
    if client.jwks is not None and (problem := jwks_problem(client.jwks)) is not None:
        return "jwks", problem
    if client.jwks_uri is not None and not is_allowed_url(client.jwks_uri):
        return "jwks_uri", "https is required unless loopback"
    if (client.type == SYMMETRIC) != (client.client_secret is not None):
        return "client_secret", "required for confidential-symmetric clients, and only for them"
    if client.type == BACKEND:
        if client.redirect_uris or client.launch_uri:
            return "redirect_uris", "backend clients do not redirect"
        if client.organization is None:
            return "organization", "backend clients act for an organization"
    elif not client.redirect_uris:
        return "redirect_uris", "an app client needs at least one redirect URI"
    for index, uri in enumerate(client.redirect_uris):
        if len(uri) > 2048 or not is_allowed_url(uri):
            return f"redirect_uris[{index}]", "https is required unless loopback"
    if client.launch_uri is not None and not is_allowed_url(client.launch_uri):
        return "launch_uri", "https is required unless loopback"
    try:
        scopes = parse_scopes(client.scope)
    except MalformedScope as error:
        return "scope", f"{error.scope[:100]} is malformed: {error}"
    if client.type == BACKEND and any(
        s.resource is None or s.resource.level != "system" for s in scopes
    ):
        return "scope", "backend clients are pre-authorised for system/ scopes only"
    return None


def apply(engine: Engine, users: list[dict[str, Any]], clients: list[dict[str, Any]]) -> None:
    """Validate, then write every user and client in one transaction."""
    parsed = validate(users, clients)
    with writing(engine) as connection:
        for user in parsed.users:
            _upsert_user(connection, user)
        for client in parsed.clients:
            _upsert_client(connection, client)


def _upsert_user(connection: Connection, user: UserSpec) -> None:
    table = user_table
    current = connection.execute(select(table).where(table.c.username == user.username)).first()
    values: dict[str, Any] = {
        "fhir_user": user.fhir_user,
        "organization": user.organization,
        "roles": sorted(set(user.roles)),
    }
    if current is None:
        values["password_hash"] = hash_password(user.password)
        connection.execute(insert(table).values(username=user.username, **values))
        return
    if not verify_password(current.password_hash, user.password):
        values["password_hash"] = hash_password(user.password)
    if any(getattr(current, name) != value for name, value in values.items()):
        connection.execute(update(table).where(table.c.username == user.username).values(values))


def _upsert_client(connection: Connection, client: ClientSpec) -> None:
    table = client_table
    current = connection.execute(select(table).where(table.c.client_id == client.client_id)).first()
    values: dict[str, Any] = {
        "client_type": client.type,
        "organization": client.organization,
        "redirect_uris": list(client.redirect_uris),
        "launch_uri": client.launch_uri,
        "scope": " ".join(client.scope.split()),
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
    }
    secret = client.client_secret
    if current is None:
        values["secret_hash"] = hash_password(secret) if secret is not None else None
        connection.execute(insert(table).values(client_id=client.client_id, **values))
        return
    if secret is None:
        values["secret_hash"] = None
    elif not verify_password(current.secret_hash, secret):
        values["secret_hash"] = hash_password(secret)
    if any(getattr(current, name) != value for name, value in values.items()):
        connection.execute(
            update(table).where(table.c.client_id == client.client_id).values(values)
        )
