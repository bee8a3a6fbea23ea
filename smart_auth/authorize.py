"""The authorization request (GET or POST): validate it, and issue the code once approved.

Spec: http://hl7.org/fhir/smart-app-launch/app-launch.html "Obtain authorization code" and
RFC 6749 §4.1.1–4.1.2.1. Until the client and its exact redirect URI are known, a problem is a
400 page and never a redirect (no open redirector); after that, errors go back to the app with
``state``. ``state``, ``aud`` (our FHIR base) and PKCE S256 are required of every client.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert

from smart_auth.credentials import digest, new_secret
from smart_auth.db import now, writing
from smart_auth.launches import LaunchContext, consume_launch, find_launch
from smart_auth.oauth import (
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnsupportedResponseType,
    is_valid_challenge,
    redirect_with,
)
from smart_auth.registry import Client, User, get_client
from smart_auth.scopes import (
    MalformedScope,
    Scope,
    has_patient_scope,
    names,
    narrow,
    parse_scopes,
    scope_text,
)
from smart_auth.settings import SmartSettings
from smart_auth.tables import code_table
from smart_auth.tokens import new_family_id

AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "resource",
    "code_challenge",
    "code_challenge_method",
    "launch",
    "nonce",
)
"""The parameters we read, and carry through the login and consent forms."""
MAX_PARAM_CHARS = 2048
MAX_NONCE_CHARS = 512


class UntrustedRedirect(Exception):
    """The client or redirect URI is unknown: answer with a 400 page, never a redirect."""


@dataclass(frozen=True)
class AuthorizeRequest:
    client: Client
    redirect_uri: str
    state: str
    scopes: list[Scope]
    """What will be granted: the requested scopes the client is registered for."""
    code_challenge: str
    nonce: str | None
    launch: str | None
    context: LaunchContext | None
    params: tuple[tuple[str, str], ...]

    @property
    def needs_patient(self) -> bool:
        """A patient must be picked: patient scopes or launch/patient, and no launch patient."""
        wants = has_patient_scope(self.scopes) or "launch/patient" in names(self.scopes)
        return wants and (self.context is None or self.context.patient is None)


def error_location(error: Any, *, issuer: str) -> str:
    """Where a redirectable error sends the browser: the app's redirect URI, with ``state``."""
    params = [(str(name), str(value)) for name, value in error.get_body()]
    return redirect_with(error.redirect_uri, [*params, ("iss", issuer)])


def parse_authorize(
    pairs: list[tuple[str, str]], *, connection: Connection, settings: SmartSettings
) -> AuthorizeRequest:
    """Validate an authorization request; raises UntrustedRedirect or a redirectable error."""
    values: dict[str, str] = {}
    duplicated: set[str] = set()
    for name, value in pairs:
        if name in AUTHORIZE_PARAMS:
            if name in values:
                duplicated.add(name)
            values[name] = value
    client_id, redirect_uri = values.get("client_id"), values.get("redirect_uri")
    if duplicated & {"client_id", "redirect_uri"} or not client_id or not redirect_uri:
        raise UntrustedRedirect("client_id and redirect_uri are each required once")
    client = get_client(connection, client_id)
    if client is None or not client.is_app:
        raise UntrustedRedirect("this client is not registered for sign-in")
    if redirect_uri not in client.redirect_uris:  # exact string match, SMART app-launch.html
        raise UntrustedRedirect("redirect_uri is not registered for this client")
    try:
        return _validate(client, redirect_uri, values, duplicated, connection, settings)
    except OAuthError as error:  # from here on, errors go back to the app (§4.1.2.1)
        error.redirect_uri = redirect_uri
        error.state = values.get("state")
        raise


def _validate(
    client: Client,
    redirect_uri: str,
    values: dict[str, str],
    duplicated: set[str],
    connection: Connection,
    settings: SmartSettings,
) -> AuthorizeRequest:
    if duplicated or any(len(value) > MAX_PARAM_CHARS for value in values.values()):
        raise InvalidRequest(description="Parameters may appear once and be at most 2048 chars.")
    if values.get("response_type") != "code":
        raise UnsupportedResponseType(values.get("response_type") or "")
    state = values.get("state")
    if not state:
        raise InvalidRequest(description="state is required.")
    audience = values.get("aud", values.get("resource"))
    if audience is None or audience.rstrip("/") != settings.fhir_base:
        raise InvalidRequest(description="aud must be this server's FHIR base URL.")
    if values.get("code_challenge_method") != "S256":
        raise InvalidRequest(description="PKCE is required, with code_challenge_method S256.")
    challenge = values.get("code_challenge", "")
    if not is_valid_challenge(challenge):
        raise InvalidRequest(description="code_challenge must be an S256 challenge.")
    try:
        requested = parse_scopes(values.get("scope"))
    except MalformedScope as error:
        raise InvalidScope(description=f"Malformed scope: {error}.") from error
    scopes = narrow(requested, parse_scopes(client.scope))
    if not scopes:
        raise InvalidScope(description="None of the requested scopes can be granted.")
    nonce = values.get("nonce")
    if nonce is not None and not 0 < len(nonce) <= MAX_NONCE_CHARS:
        raise InvalidRequest(description="nonce must be 1 to 512 characters.")
    launch = values.get("launch")
    context = None
    if launch is not None or "launch" in names(scopes):
        if launch is None or "launch" not in names(scopes):
            raise InvalidRequest(description="An EHR launch needs both launch and scope launch.")
        context = find_launch(connection, launch, client_id=client.client_id)
        if context is None:
            raise InvalidRequest(description="The launch is unknown, used, expired or not yours.")
    return AuthorizeRequest(
        client=client,
        redirect_uri=redirect_uri,
        state=state,
        scopes=scopes,
        code_challenge=challenge,
        nonce=nonce,
        launch=launch,
        context=context,
        params=tuple((name, values[name]) for name in AUTHORIZE_PARAMS if name in values),
    )


def issue_code(
    engine: Engine,
    request: AuthorizeRequest,
    *,
    user: User,
    patient: str | None,
    settings: SmartSettings,
) -> str | None:
    """Store a single-use code (consuming the launch handle); None if the handle is gone."""
    at = now()
    code = new_secret()
    with writing(engine) as connection:
        if request.launch is not None and not consume_launch(
            connection, request.launch, client_id=request.client.client_id, at=at
        ):
            return None
        connection.execute(
            insert(code_table).values(
                code_hash=digest(code),
                family_id=new_family_id(),
                client_id=request.client.client_id,
                username=user.username,
                redirect_uri=request.redirect_uri,
                scope=scope_text(request.scopes),
                code_challenge=request.code_challenge,
                nonce=request.nonce,
                context=launch_context(request.context, patient=patient, settings=settings),
                expires_at=at + settings.code_ttl,
            )
        )
    return code


def launch_context(
    context: LaunchContext | None, *, patient: str | None, settings: SmartSettings
) -> dict[str, Any]:
    """The SMART launch context parameters of the token response (scopes-and-launch-context)."""
    result: dict[str, Any] = {}
    patient = patient or (context.patient if context is not None else None)
    if patient is not None:
        result["patient"] = patient.removeprefix("Patient/")
        result["need_patient_banner"] = True
    if context is not None and context.encounter is not None:
        result["encounter"] = context.encounter.removeprefix("Encounter/")
    if context is not None and context.fhir_context:
        result["fhirContext"] = [{"reference": reference} for reference in context.fhir_context]
    result["smart_style_url"] = settings.style_url
    return result


def success_location(request: AuthorizeRequest, code: str, *, issuer: str) -> str:
    """RFC 6749 §4.1.2, plus ``iss`` (RFC 9207) against mix-up attacks."""
    return redirect_with(
        request.redirect_uri, [("code", code), ("state", request.state), ("iss", issuer)]
    )
