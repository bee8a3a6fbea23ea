"""A CBO's webhook endpoint for tests: a real HTTP server on a loopback port, in threads.

It checks every delivery with ``verify_webhook`` and records it (id, arrival and answer times,
status sent back). ``answers`` queues statuses to send before 200; ``stall`` makes the next
deliveries hang until ``release()``; a receiver built but not started refuses connections.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from adapters.webhooks import WebhookVerificationError, verify_webhook


@dataclass(frozen=True)
class Delivery:
    id: str
    body: bytes
    headers: dict[str, str]
    arrived: float
    answered: float
    status: int
    verified: bool
    path: str


class _ReceiverServer(ThreadingHTTPServer):
    request_queue_size = 128
    """The default backlog of 5 drops connections from a few concurrent senders, and the
    kernel's SYN retries then stall them for up to half a minute."""
    daemon_threads = True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WebhookReceiver:
    def __init__(self, secret: str, *, port: int | None = None, delay_s: float = 0.0) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.delay_s = delay_s
        self.answers: list[int] = []
        self.deliveries: list[Delivery] = []
        self.arrivals: list[str] = []
        """Ids in arrival order, including deliveries still stalled or never answered."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stalls = 0
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> "WebhookReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *_: object) -> None:
                return

        self._server = _ReceiverServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def stall(self, count: int = 1) -> None:
        """The next ``count`` deliveries hang (no answer) until ``release()``."""
        with self._lock:
            self._stalls += count
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        body = request.rfile.read(int(request.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in request.headers.items()}
        with self._changed:
            self.arrivals.append(headers.get("webhook-id", ""))
            stalled = self._stalls > 0
            self._stalls -= 1 if stalled else 0
            status = self.answers.pop(0) if self.answers else 200
            self._changed.notify_all()
        if stalled:
            self._released.wait(timeout=30)
        if self.delay_s:
            time.sleep(self.delay_s)
        try:
            verify_webhook(self.secret, headers, body)
            verified = True
        except WebhookVerificationError:
            verified = False
        try:
            request.send_response(status)
            request.send_header("content-length", "0")
            request.end_headers()
        except OSError:  # the sender is gone (killed mid-delivery)
            return
        with self._changed:
            self.deliveries.append(
                Delivery(
                    id=headers.get("webhook-id", ""),
                    body=body,
                    headers=headers,
                    arrived=arrived,
                    answered=time.monotonic(),
                    status=status,
                    verified=verified,
                    path=request.path,
                )
            )
            self._changed.notify_all()

    def wait_until(self, condition: Callable[["WebhookReceiver"], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def accepted(self) -> list[Delivery]:
        """Deliveries answered 2xx, in the order they were answered."""
        with self._lock:
            return [d for d in self.deliveries if 200 <= d.status < 300]

    def overlapping_deliveries(self) -> int:
        """Pairs of deliveries of one id that were in progress at the same time."""
        with self._lock:
            by_id: dict[str, list[Delivery]] = {}
            for delivery in self.deliveries:
                by_id.setdefault(delivery.id, []).append(delivery)
        overlaps = 0
        for same in by_id.values():
            same.sort(key=lambda d: d.arrived)
            busy_until = float("-inf")
            for delivery in same:
                if delivery.arrived < busy_until:
                    overlaps += 1
                busy_until = max(busy_until, delivery.answered)
        return overlaps


@contextmanager
def running_receiver(secret: str, *, delay_s: float = 0.0) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret, delay_s=delay_s).start()
    try:
        yield receiver
    finally:
        receiver.stop()
