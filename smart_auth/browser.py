"""Browser-facing endpoints: authorize, consent with the patient picker, login, logout, EHR launch.

A visitor without a session sees the login form first and then continues where they were
(the ``next`` address is ours: only ``/auth/authorize`` or ``/app/launch/…``). Every POST form
is CSRF-checked; the authorization request itself is re-validated on every step.
"""

import re
from urllib.parse import urlencode

from fastapi import APIRouter
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from conformance.references import parse_reference
from conformance.resource_types import RESOURCE_TYPES
from smart_auth.authorize import (
    AuthorizeRequest,
    UntrustedRedirect,
    error_location,
    issue_code,
    parse_authorize,
    success_location,
)
from smart_auth.credentials import verify_password
from smart_auth.db import reading
from smart_auth.forms import UnreadableForm, read_pairs
from smart_auth.launches import LaunchContext, mint_launch
from smart_auth.oauth import AccessDenied, InvalidRequest, OAuthError, redirect_with
from smart_auth.pages import (
    consent_page,
    error_page,
    login_page,
    logout_page,
    signed_out_page,
)
from smart_auth.patients import PatientDirectory
from smart_auth.purge import Purger
from smart_auth.registry import User, get_client, get_user
from smart_auth.sessions import Browser, Sessions
from smart_auth.settings import SmartSettings

PICKER_LIMIT = 50
MAX_FHIR_CONTEXT = 5
_NEXT = re.compile(r"^/(auth/authorize\?|app/launch/)[^\\\s]*$")


def safe_next(value: str | None) -> str:
    """Continue only to our own authorize or launch pages (no open redirect after login)."""
    return value if value and _NEXT.match(value) else "/auth/login"


def browser_router(
    *,
    settings: SmartSettings,
    engine: Engine,
    sessions: Sessions,
    patients: PatientDirectory,
    purger: Purger,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    issuer = settings.issuer

    def ask_to_sign_in(browser: Browser, next_url: str, *, failed: bool = False) -> Response:
        response = login_page(csrf=browser.csrf, next_url=next_url, failed=failed)
        sessions.set_cookie(response, browser)
        return response

    def redirect_error(error: object) -> Response:
        return RedirectResponse(error_location(error, issuer=issuer), status_code=303)

    def validated(pairs: list[tuple[str, str]], user: User | None) -> AuthorizeRequest:
        with reading(engine) as connection:
            request = parse_authorize(pairs, connection=connection, settings=settings)
        context = request.context
        if user is not None and context is not None and context.username != user.username:
            error = InvalidRequest(description="This launch was started by another user.")
            error.redirect_uri, error.state = request.redirect_uri, request.state
            raise error
        return request

    @router.api_route("/auth/authorize", methods=["GET", "POST"])
    async def authorize(request: Request) -> Response:
        """SMART app-launch.html: servers SHALL support GET and POST (authorize-post)."""
        try:
            pairs = (
                await read_pairs(request)
                if request.method == "POST"
                else list(request.query_params.multi_items())
            )
        except UnreadableForm as error:
            return error_page(str(error), status=error.status)
        browser = sessions.browser(request)
        try:
            authorization = validated(pairs, browser.user)
        except UntrustedRedirect as error:
            return error_page(f"This sign-in request cannot be trusted: {error}.")
        except OAuthError as error:
            return redirect_error(error)
        if browser.user is None:
            return ask_to_sign_in(browser, "/auth/authorize?" + urlencode(authorization.params))
        search = dict(pairs).get("patient_search", "")[:100]
        return consent(authorization, browser, browser.user, search)

    def consent(
        authorization: AuthorizeRequest, browser: Browser, user: User, search: str
    ) -> Response:
        choices = None
        if authorization.needs_patient:
            choices = patients.find_patients(
                organization=user.organization, text=search or None, limit=PICKER_LIMIT
            )
        context = authorization.context
        return consent_page(
            csrf=browser.csrf,
            client_id=authorization.client.client_id,
            scopes=[scope.text for scope in authorization.scopes],
            params=authorization.params,
            username=user.username,
            launch_patient=context.patient if context is not None else None,
            patients=choices,
            search=search,
        )

    @router.post("/auth/consent")
    async def decide(request: Request) -> Response:
        try:
            pairs = await read_pairs(request)
        except UnreadableForm as error:
            return error_page(str(error), status=error.status)
        fields = dict(pairs)
        browser = sessions.browser(request)
        user = browser.user
        if user is None or not browser.csrf_ok(fields.get("csrf")):
            return error_page("Your sign-in ended or this form is stale: start again.", status=403)
        try:
            authorization = validated(pairs, user)
        except UntrustedRedirect as error:
            return error_page(f"This sign-in request cannot be trusted: {error}.")
        except OAuthError as error:
            return redirect_error(error)
        if fields.get("decision") != "approve":
            denied = AccessDenied(description="The user denied access.")
            denied.redirect_uri, denied.state = authorization.redirect_uri, authorization.state
            return redirect_error(denied)
        patient = None
        if authorization.needs_patient:
            patient = fields.get("patient", "")
            parsed = parse_reference(patient)
            if parsed is None or parsed.resource_type != "Patient" or not parsed.is_local:
                return error_page("Pick a patient from the list.")
            if not patients.patient_exists(patient):
                return error_page("Pick a patient from the list.")
        code = issue_code(engine, authorization, user=user, patient=patient, settings=settings)
        if code is None:
            gone = InvalidRequest(description="The launch was already used or has expired.")
            gone.redirect_uri, gone.state = authorization.redirect_uri, authorization.state
            return redirect_error(gone)
        purger.maybe_purge()
        return RedirectResponse(success_location(authorization, code, issuer=issuer), 303)

    @router.get("/auth/login")
    async def login_form(request: Request) -> Response:
        browser = sessions.browser(request)
        next_url = safe_next(request.query_params.get("next"))
        if browser.user is not None:
            if next_url != "/auth/login":
                return RedirectResponse(next_url, status_code=303)
            return logout_page(csrf=browser.csrf)
        return ask_to_sign_in(browser, next_url)

    @router.post("/auth/login")
    async def login(request: Request) -> Response:
        try:
            fields = dict(await read_pairs(request))
        except UnreadableForm as error:
            return error_page(str(error), status=error.status)
        browser = sessions.browser(request)
        next_url = safe_next(fields.get("next"))
        if not browser.csrf_ok(fields.get("csrf")):
            fresh = sessions.browser(request)  # a stale or foreign form: show a fresh one
            return ask_to_sign_in(fresh, next_url)
        username, password = fields.get("username", "")[:128], fields.get("password", "")
        with reading(engine) as connection:
            user = get_user(connection, username)
        password_hash = user.password_hash if user is not None else None
        if user is None or not await run_in_threadpool(verify_password, password_hash, password):
            return ask_to_sign_in(browser, next_url, failed=True)
        signed_in = sessions.sign_in(user, previous=browser.secret)
        response = RedirectResponse(next_url, status_code=303)
        sessions.set_cookie(response, signed_in)
        purger.maybe_purge()
        return response

    @router.get("/auth/logout")
    async def logout_form(request: Request) -> Response:
        browser = sessions.browser(request)
        response = logout_page(csrf=browser.csrf)
        sessions.set_cookie(response, browser)
        return response

    @router.post("/auth/logout")
    async def logout(request: Request) -> Response:
        try:
            fields = dict(await read_pairs(request))
        except UnreadableForm as error:
            return error_page(str(error), status=error.status)
        browser = sessions.browser(request)
        if not browser.csrf_ok(fields.get("csrf")):
            return error_page("This form is stale: reload the page.", status=403)
        sessions.sign_out(browser.secret)
        response = signed_out_page()
        sessions.clear_cookie(response)
        return response

    @router.get("/app/launch/{client_id}")
    async def ehr_launch(request: Request, client_id: str) -> Response:
        """Loopgate as the EHR: mint a launch handle and open the app's launch URL with it."""
        browser = sessions.browser(request)
        if browser.user is None:
            return ask_to_sign_in(browser, f"{request.url.path}?{request.url.query}")
        with reading(engine) as connection:
            client = get_client(connection, client_id)
        if client is None or not client.is_app or client.launch_uri is None:
            return error_page("This application cannot be launched from Loopgate.", status=404)
        query = request.query_params
        patient, encounter = query.get("patient"), query.get("encounter")
        fhir_context = query.getlist("context")
        problem = _launch_problem(patient, encounter, fhir_context)
        if problem is None and patient is not None and not patients.patient_exists(patient):
            problem = "That patient does not exist."
        if problem is not None:
            return error_page(problem)
        handle = mint_launch(
            engine,
            LaunchContext(
                client_id=client.client_id,
                username=browser.user.username,
                patient=patient,
                encounter=encounter,
                fhir_context=tuple(fhir_context),
            ),
            ttl=settings.launch_ttl,
        )
        location = redirect_with(
            client.launch_uri, [("iss", settings.fhir_base), ("launch", handle)]
        )
        return RedirectResponse(location, status_code=303)

    return router


def _launch_problem(
    patient: str | None, encounter: str | None, fhir_context: list[str]
) -> str | None:
    """Why the launch context is unusable, or None."""
    for value, kind in ((patient, "Patient"), (encounter, "Encounter")):
        if value is None:
            continue
        parsed = parse_reference(value)
        if parsed is None or parsed.resource_type != kind or not parsed.is_local:
            return f"{kind.lower()} must be a {kind}/<id> reference."
        if parsed.version is not None:
            return f"{kind.lower()} must not name a version."
    if len(fhir_context) > MAX_FHIR_CONTEXT:
        return "At most five context references."
    for value in fhir_context:
        parsed = parse_reference(value)
        if parsed is None or not parsed.is_local or parsed.resource_type not in RESOURCE_TYPES:
            return "context must be a reference like ServiceRequest/<id>."
    return None
