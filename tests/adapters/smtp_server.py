"""A mail server for tests: aiosmtpd on a loopback port, keeping every message it accepts.

``refuse`` holds addresses to refuse with 550 (a permanent refusal); a server built but not
started refuses connections, like a mail server that is down.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller

from tests.adapters.webhook_receiver import free_port


class MailServer:
    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # aiosmtpd handler hooks, called on its own event loop thread

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(cast(EmailMessage, parsed))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def wait_for(
        self, condition: Callable[[list[EmailMessage]], bool], timeout: float = 20
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.received()):
            if time.monotonic() > deadline:
                raise AssertionError(f"mail server: condition not met ({len(self.messages)} held)")
            time.sleep(0.02)


@contextmanager
def running_mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
