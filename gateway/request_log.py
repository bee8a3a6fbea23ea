"""Request ids and a PHI-free access log: method, route template, status, duration.

Query strings and bodies never reach the log: ``Patient?name=…`` would write a name into it.
"""

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("loopgate.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-._]{1,64}$")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _SAFE_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or _path_shape(scope.get("path", ""))
            log.info(
                "%s %s %s %.1fms request-id=%s",
                scope.get("method"),
                path,
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )


def _path_shape(path: str) -> str:
    """An unrouted path, with anything after the first two segments elided."""
    parts = path.split("/")
    return "/".join(parts[:3]) + ("/…" if len(parts) > 3 else "")
