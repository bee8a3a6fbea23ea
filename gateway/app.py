"""The application factory: ``create_app(settings)`` builds Loopgate's ASGI app.

The database schema is migrated by the CLI before any worker starts (reference/perf.md §4.6);
the app opens the engine, makes sure the SMART signing key exists, warms the FHIR validation
schemas, and serves the SMART authorization server next to the FHIR API it protects, the JSON
API for community organizations at ``/api/v1``, and the outbox worker that sends their webhooks.
"""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cache

import httpx
import orjson
from fastapi import FastAPI, Request
from sqlalchemy import Engine, text
from starlette.responses import JSONResponse, Response

from adapters.subscriptions import RestHookClient
from conformance.access import AccessContext
from conformance.capability import capability_statement
from conformance.fhir_time import format_instant
from conformance.resource_types import CORE_TYPES
from conformance.resources import warm_up
from gateway import __version__
from gateway.access.patients import StorePatientDirectory
from gateway.cbo_api import cbo_app
from gateway.email import (
    EMAIL_KIND,
    EmailLinks,
    OverdueReminders,
    email_action_router,
    email_handler,
    email_zone,
    new_referral_sink,
    record_link_use,
    smtp_config,
)
from gateway.fhir import FhirService
from gateway.fhir.write_context import now_us
from gateway.fhir_api.errors import register_error_handlers
from gateway.fhir_api.routes import fhir_router
from gateway.garbage_collection import settled_heap
from gateway.live import LiveHub, ReferralEventRecorder, StreamOptions, live_router
from gateway.logs import configure_logging
from gateway.outbox import Handler, OutboxOptions, OutboxWorker, webhook_handler
from gateway.partners.authentication import cbo_authenticator
from gateway.partners.policy import webhook_target
from gateway.referrals.auto_decline import auto_decline_handler
from gateway.referrals.cbo_core import CboApi
from gateway.referrals.codesystem import publish_reason_codesystem
from gateway.referrals.events import AUTO_DECLINE_KIND, WEBHOOK_KIND, ReferralNotifier
from gateway.request_log import RequestLogMiddleware
from gateway.settings import Settings, get_settings
from gateway.store.engine import make_engine, sqlite_checkpointer
from gateway.subscriptions import (
    SUBSCRIPTION_KIND,
    Heartbeats,
    Renderer,
    StatusMoves,
    SubscriptionEvents,
    subscription_handler,
    subscription_router,
)
from smart_auth import SmartAuth, SmartSettings

OUTBOUND_TIMEOUT_S = 5.0


def smart_settings(settings: Settings) -> SmartSettings:
    return SmartSettings(
        public_url=settings.public_url, fhir_base=settings.fhir_base, api_base=settings.api_base
    )


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    outbox_handlers: Mapping[str, Handler] | None = None,
) -> FastAPI:
    engine = engine or make_engine(settings.database_url)

    def wake_outbox() -> None:
        outbox.wake()

    email_sinks = [new_referral_sink(wake_outbox=wake_outbox)] if settings.email_enabled else []
    notifier = ReferralNotifier(
        api_base=settings.api_base, after_commit=wake_outbox, sinks=email_sinks
    )
    hub = LiveHub(
        engine,
        poll_interval_s=settings.events_poll_interval_s,
        retention_s=settings.events_retention_days * 86_400,
    )
    service = FhirService(
        engine,
        fhir_base=settings.fhir_base,
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
        # the event recorder last: it holds its organizations' sequence rows until the commit
        task_listeners=[notifier, record_link_use, ReferralEventRecorder(changed=hub.changed)],
    )
    service.write_listeners.append(
        SubscriptionEvents(service, email_enabled=settings.email_enabled, after_commit=wake_outbox)
    )
    renderer = Renderer(service)
    heartbeats = Heartbeats(
        engine, interval_s=settings.subscription_heartbeat_scan_s, wake_outbox=wake_outbox
    )
    cbo = CboApi(service, wake_outbox=wake_outbox)
    email_links = EmailLinks(engine, public_url=settings.public_url)
    reminders = OverdueReminders(
        engine, cbo, interval_s=settings.email_overdue_scan_s, wake_outbox=wake_outbox
    )
    # SMART fetches client JWKS URLs; never follow redirects to somewhere unregistered
    http = httpx.AsyncClient(timeout=OUTBOUND_TIMEOUT_S, follow_redirects=False)
    smart = SmartAuth(
        settings=smart_settings(settings),
        engine=engine,
        http=http,
        patients=StorePatientDirectory(service),
    )
    rest_hooks = RestHookClient()
    handlers: dict[str, Handler] = {
        WEBHOOK_KIND: webhook_handler(http, webhook_target=webhook_target(engine)),
        AUTO_DECLINE_KIND: auto_decline_handler(cbo),
        SUBSCRIPTION_KIND: subscription_handler(
            engine=engine,
            renderer=renderer,
            statuses=StatusMoves(service),
            rest_hooks=rest_hooks,
            smtp=smtp_config(settings) if settings.email_enabled else None,
            sender=settings.smtp_from,
        ),
    }
    if settings.email_enabled:
        handlers[EMAIL_KIND] = email_handler(
            cbo=cbo,
            links=email_links,
            smtp=smtp_config(settings),
            sender=settings.smtp_from,
            zone=email_zone(settings),
            link_ttl_s=settings.email_link_ttl_hours * 3600,
        )
    handlers.update(outbox_handlers or {})
    outbox = OutboxWorker(engine, handlers, options=OutboxOptions.from_settings(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        smart.ensure_keys()
        warm_up([*CORE_TYPES, "Bundle"])
        publish_reason_codesystem(service)
        checkpointer = sqlite_checkpointer(engine)
        if checkpointer is not None:
            checkpointer.start()
        email_links.ensure_key()
        if settings.outbox_worker and outbox.handlers:
            outbox.start()
        if settings.outbox_worker and settings.email_enabled and settings.email_overdue_scan_s:
            reminders.start()
        if settings.outbox_worker and settings.subscription_heartbeat_scan_s:
            heartbeats.start()
        hub.start()
        with settled_heap():
            yield
        await hub.stop()
        await heartbeats.stop()
        await reminders.stop()
        await outbox.stop()
        await rest_hooks.aclose()
        if checkpointer is not None:
            checkpointer.stop()
        await http.aclose()
        engine.dispose()

    app = FastAPI(
        title="Loopgate",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.fhir = service
    app.state.smart = smart
    app.state.engine = engine
    app.state.outbox = outbox
    app.state.cbo = cbo
    app.state.email_links = email_links
    app.state.email_reminders = reminders
    app.state.live = hub
    app.state.heartbeats = heartbeats
    register_error_handlers(app)
    app.add_middleware(RequestLogMiddleware)

    @cache
    def capability() -> bytes:
        statement = capability_statement(
            fhir_base=settings.fhir_base,
            software_version=__version__,
            date=format_instant(now_us())[:10],
            security=smart.capability_security(),
        )
        return orjson.dumps(statement)

    async def access(request: Request) -> AccessContext:
        return await smart.authenticate(request, audience=settings.fhir_base)

    # Routes are matched in order, and the FHIR requests are the many: only the routes that
    # /fhir/{type}/{id} would take go before them. SMART's discovery document first:
    # /fhir/.well-known/smart-configuration would match /fhir/{type}/{id}
    app.include_router(smart.discovery_router)
    # before the FHIR routes: /fhir/Subscription/$status would match /fhir/{type}/{id}
    app.include_router(
        subscription_router(
            service, renderer, access=access, max_body_bytes=settings.max_body_bytes
        )
    )
    app.include_router(
        fhir_router(
            service, capability=capability, access=access, max_body_bytes=settings.max_body_bytes
        )
    )
    app.include_router(smart.router)  # nothing under /fhir

    app.include_router(
        email_action_router(
            cbo=cbo, links=email_links, public_url=settings.public_url, zone=email_zone(settings)
        )
    )

    async def api_access(request: Request) -> AccessContext:
        return await smart.authenticate(request, audience=settings.api_base)

    cbo_authenticate = cbo_authenticator(engine, api_access)
    live = live_router(
        authenticate=cbo_authenticate,
        hub=hub,
        engine=engine,
        options=StreamOptions(
            api_base=settings.api_base,
            keepalive_s=settings.events_keepalive_s,
            retry_ms=int(settings.events_poll_interval_s * 1000) + 1000,
        ),
    )
    app.mount(
        "/api/v1",
        cbo_app(
            core=cbo,
            authenticate=cbo_authenticate,
            api_base=settings.api_base,
            routers=[live],
        ),
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    return app


def create_app_from_environment() -> FastAPI:
    """Entry point for ``uvicorn --factory`` workers: settings from ``LOOPGATE_*``.

    Workers are fresh processes, so they set up logging themselves (else, with
    ``LOOPGATE_WORKERS`` above 1, the access log would be lost)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
