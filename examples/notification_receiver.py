#!/usr/bin/env python3
"""Receive Loopgate's subscription notifications as a hospital system would: a rest-hook
endpoint that prints one line per notification and tells a gap in the event numbers.

    python examples/notification_receiver.py            # listens on http://127.0.0.1:9099/
    python examples/notification_receiver.py --port 9100 --header "Authorization: Bearer s3cret"

Loopgate POSTs a FHIR ``history`` Bundle whose first entry is the SubscriptionStatus
``Parameters`` (type handshake, heartbeat or event-notification, the event numbers and their
focus). A real receiver answers 2xx quickly and fetches what it needs with its own token;
with ``--header`` this one answers 401 to a POST without that header, as it should to anyone
but Loopgate. Standard library only. Spec:
https://hl7.org/fhir/uv/subscriptions-backport/notifications.html
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EXPECTED_NEXT: dict[str, int] = {}
"""Per subscription, the event number the next notification should carry."""


def summary(bundle: dict[str, Any]) -> str:
    """One line for a notification Bundle: subscription, type, events and their focus."""
    status = (bundle.get("entry") or [{}])[0].get("resource") or {}
    parts = {p.get("name"): p for p in status.get("parameter") or []}
    subscription = (parts.get("subscription") or {}).get("valueReference", {}).get("reference")
    kind = (parts.get("type") or {}).get("valueCode")
    since = (parts.get("events-since-subscription-start") or {}).get("valueString")
    events = []
    for part in status.get("parameter") or []:
        if part.get("name") != "notification-event":
            continue
        fields = {p.get("name"): p for p in part.get("part") or []}
        number = int((fields.get("event-number") or {}).get("valueString", "0"))
        focus = (fields.get("focus") or {}).get("valueReference", {}).get("reference")
        events.append((number, focus))
    line = f"{subscription} {kind} (events since start: {since})"
    for number, focus in events:
        expected = EXPECTED_NEXT.get(str(subscription), number)
        gap = "" if number == expected else f"  <- expected event {expected}: ask $events"
        line += f"\n  event {number}: {focus}{gap}"
        EXPECTED_NEXT[str(subscription)] = max(expected, number + 1)
    return line


class Receiver(BaseHTTPRequestHandler):
    required_header: tuple[str, str] | None = None

    def do_POST(self) -> None:
        if self.required_header is not None:
            name, value = self.required_header
            if self.headers.get(name) != value:
                self._answer(401)
                return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            bundle = json.loads(self.rfile.read(length))
        except ValueError:
            self._answer(400)
            return
        print(summary(bundle), flush=True)
        self._answer(200)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the summary line is the log."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--header", help='a header Loopgate must send, e.g. "X-Token: abc"')
    options = parser.parse_args(argv)
    if options.header:
        name, _, value = options.header.partition(":")
        Receiver.required_header = (name.strip(), value.strip())
    server = ThreadingHTTPServer((options.host, options.port), Receiver)
    print(f"listening on http://{options.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
