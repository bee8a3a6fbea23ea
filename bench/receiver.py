"""The subscriber and the CBO in one process: ``python -m bench.receiver``.

Reads a JSON spec on stdin. It runs a rest-hook receiver (raw asyncio HTTP/1.1 on loopback,
uvloop) that records, for every notification POST, when its first byte and its end arrived,
when it was answered, its subscription, type, event number and focus; and it plays the CBO,
moving pre-seeded requested Tasks to accepted with ``PUT /fhir/Task/nt-i`` (``If-Match``) over
raw keep-alive connections (``bench.loadgen``'s client). Because the action's send time and the
notification's arrival time are read from the same clock in the same process, their difference
is the end-to-end latency. Phases, in order:

1. ``latency``: one subscription (handshake first), actions at a fixed rate (open loop), every
   event awaited; then that subscription is set ``off``.
2. ``writes-plain``: Task writes as fast as ``connections`` closed-loop clients go, with no live
   subscription: the write rate without any matching cost.
3. ``subscribe``: the many subscriptions, ``fanout`` of which match the CBO's Tasks and the rest
   filter on owners that never occur; every handshake awaited.
4. ``burst``: the same writes with those subscriptions live, then every notification awaited.

Prints ``MARK <phase>-start|end`` lines as it goes (the parent reads server CPU there) and the
result as one JSON line at the end.
"""

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import orjson

from bench import payloads
from bench.loadgen import ResponseReader, _cpu_seconds, _install_uvloop, _percentiles
from bench.workloads import http_request

TASK_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
MATCHING_FILTER = f"Task?requester={payloads.CLINICIAN_ROLE}"
"""Every Task the CBO moves was requested by the hospital's clinician."""
TASK_PREFIX = "nt"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def nomatch_filter(i: int) -> str:
    return f"Task?owner=Organization/bench-nobody-{i}"


def subscription(endpoint: str, criteria: str, status: str = "requested") -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "meta": {"profile": [f"{BACKPORT}backport-subscription"]},
        "status": status,
        "reason": "Loopgate bench: referral status changes",
        "criteria": TASK_TOPIC,
        "_criteria": {
            "extension": [{"url": f"{BACKPORT}backport-filter-criteria", "valueString": criteria}]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {"url": f"{BACKPORT}backport-payload-content", "valueCode": "id-only"}
                ]
            },
        },
    }


@dataclass(frozen=True)
class Delivery:
    subscription: str
    kind: str
    number: int | None
    focus: str | None
    first_byte_ns: int
    arrived_ns: int
    answered_ns: int
    connection: int


class Book:
    """Every notification the receiver got, with counters the phases wait on."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.handshakes: set[str] = set()
        self.event_arrivals: Counter[str] = Counter()
        self.bad: list[str] = []
        self.last_arrival_ns = 0

    def add(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.last_arrival_ns = delivery.arrived_ns
        if delivery.kind == "handshake":
            self.handshakes.add(delivery.subscription)
        elif delivery.kind == "event-notification":
            self.event_arrivals[delivery.subscription] += 1

    async def wait(self, done: Callable[[], bool], *, stall_s: float) -> bool:
        """Until ``done()``, or until nothing has arrived for ``stall_s`` seconds."""
        seen = len(self.deliveries)
        quiet_since = time.monotonic()
        while not done():
            await asyncio.sleep(0.01)
            if len(self.deliveries) != seen:
                seen, quiet_since = len(self.deliveries), time.monotonic()
            elif time.monotonic() - quiet_since > stall_s:
                return False
        return True


def parse_notification(body: bytes) -> tuple[str, str, int | None, str | None]:
    """(subscription id, type, event number, focus) of a Backport notification Bundle."""
    bundle = orjson.loads(body)
    subscription_id, kind, number, focus = "?", "?", None, None
    for parameter in bundle["entry"][0]["resource"]["parameter"]:
        name = parameter["name"]
        if name == "subscription":
            subscription_id = parameter["valueReference"]["reference"].rsplit("/", 1)[-1]
        elif name == "type":
            kind = parameter["valueCode"]
        elif name == "notification-event":
            for part in parameter["part"]:
                if part["name"] == "event-number":
                    number = int(part["valueString"])
                elif part["name"] == "focus":
                    focus = part["valueReference"]["reference"]
    if focus is not None:
        focus = "/".join(focus.rsplit("/", 2)[-2:])  # Task/<id>
    return subscription_id, kind, number, focus


class Hook(asyncio.Protocol):
    """One connection of the rest-hook receiver: parse each POST, answer 200 after
    ``hold_s`` (the receiver's own work), record it."""

    connections = 0

    def __init__(self, book: Book, hold_s: float) -> None:
        self.book = book
        self.hold_s = hold_s
        self.buffer = bytearray()
        self.first_byte_ns = 0
        Hook.connections += 1
        self.number = Hook.connections
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.buffer:
            self.first_byte_ns = time.perf_counter_ns()
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            arrived = time.perf_counter_ns()
            first = self.first_byte_ns
            self.first_byte_ns = arrived if self.buffer else 0
            if self.hold_s > 0:
                asyncio.get_running_loop().call_later(
                    self.hold_s, self._answer, body, first, arrived
                )
            else:
                self._answer(body, first, arrived)

    def _answer(self, body: bytes, first: int, arrived: int) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(OK)
        answered = time.perf_counter_ns()
        try:
            subscription_id, kind, number, focus = parse_notification(body)
        except (ValueError, KeyError, IndexError, TypeError) as error:
            self.book.bad.append(f"{type(error).__name__}: {body[:200]!r}")
            return
        self.book.add(
            Delivery(subscription_id, kind, number, focus, first, arrived, answered, self.number)
        )


class Client:
    """A few keep-alive connections to Loopgate, one request at a time on each."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.free: asyncio.Queue[ResponseReader] = asyncio.Queue()

    async def _connect(self) -> ResponseReader:
        _, protocol = await asyncio.get_running_loop().create_connection(
            ResponseReader, self.host, self.port
        )
        return protocol

    async def open(self) -> "Client":
        for _ in range(self.size):
            self.free.put_nowait(await self._connect())
        return self

    async def call(self, raw: bytes) -> tuple[int, bytes]:
        reader = await self.free.get()
        try:
            if reader.closed:
                reader = await self._connect()
            try:
                return await reader.send(raw)
            except ConnectionError:
                return 599, b"connection closed"
        finally:
            self.free.put_nowait(reader)

    def close(self) -> None:
        while not self.free.empty():
            reader = self.free.get_nowait()
            if reader.transport is not None:
                reader.transport.close()


class Driver:
    def __init__(self, spec: dict[str, Any], book: Book, hook_base: str) -> None:
        self.spec = spec
        self.book = book
        self.hook_base = hook_base
        self.host = f"{spec['host']}:{spec['port']}"
        self.auth: dict[str, dict[str, str]] = spec["auth"]
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []

    def client(self, size: int) -> Client:
        return Client(self.spec["host"], self.spec["port"], size)

    def _error(self, what: str, status: int, body: bytes) -> None:
        self.errors[f"{what} {status}"] += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{what} {status}: {body[:300]!r}")

    async def act(self, client: Client, i: int) -> int:
        """The CBO accepts Task nt-i (requested → accepted, If-Match W/"1")."""
        body = payloads.status_task(i, "accepted")
        body["id"] = f"{TASK_PREFIX}-{i}"
        headers = {**self.auth[payloads.CBO_WORK], "If-Match": 'W/"1"'}
        raw = http_request(
            "PUT", f"/fhir/Task/{TASK_PREFIX}-{i}", self.host, headers, orjson.dumps(body)
        )
        status, answer = await client.call(raw)
        if status != 200:
            self._error("task PUT", status, answer)
        return status

    async def subscribe(self, client: Client, endpoint: str, criteria: str) -> str | None:
        body = orjson.dumps(subscription(endpoint, criteria))
        raw = http_request(
            "POST", "/fhir/Subscription", self.host, self.auth[payloads.HOSPITAL], body
        )
        status, answer = await client.call(raw)
        if status != 201:
            self._error("subscription POST", status, answer)
            return None
        return str(orjson.loads(answer)["id"])

    async def switch_off(self, client: Client, subscription_id: str, endpoint: str) -> None:
        body = subscription(endpoint, MATCHING_FILTER, status="off")
        body["id"] = subscription_id
        raw = http_request(
            "PUT",
            f"/fhir/Subscription/{subscription_id}",
            self.host,
            self.auth[payloads.HOSPITAL],
            orjson.dumps(body),
        )
        status, answer = await client.call(raw)
        if status != 200:
            self._error("subscription PUT off", status, answer)

    async def closed_loop(self, indices: range, connections: int) -> dict[str, Any]:
        client = await self.client(connections).open()
        todo: Iterator[int] = iter(indices)
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for i in todo:
                status = await self.act(client, i)  # not `ok += await …`: that reads ok first
                ok += status == 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
        client.close()
        return {"writes": len(indices), "ok": ok, "elapsed_s": elapsed, "rate": ok / elapsed}

    # -- phases ------------------------------------------------------------------------------

    async def latency(self, first: int) -> dict[str, Any]:
        count, rate = int(self.spec["latency_count"]), float(self.spec["latency_rate"])
        mark("latency-start")
        client = await self.client(8).open()
        endpoint = f"{self.hook_base}/latency"
        sub = await self.subscribe(client, endpoint, MATCHING_FILTER)
        if sub is None:
            raise RuntimeError(f"could not subscribe: {self.error_samples}")
        shook = await self.book.wait(lambda: sub in self.book.handshakes, stall_s=30)
        sent: dict[str, int] = {}
        statuses: Counter[int] = Counter()

        async def one(i: int) -> None:
            sent[f"Task/{TASK_PREFIX}-{i}"] = time.perf_counter_ns()
            statuses[await self.act(client, i)] += 1

        t0 = time.perf_counter()
        actions = []
        for n in range(count):
            delay = t0 + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            actions.append(asyncio.create_task(one(first + n)))
        await asyncio.gather(*actions)
        ok = statuses[200]
        complete = await self.book.wait(
            lambda: self.book.event_arrivals[sub] >= ok, stall_s=float(self.spec["stall_s"])
        )
        mark("latency-end")
        await self.switch_off(client, sub, endpoint)
        client.close()
        first_arrival: dict[str, int] = {}
        for d in self.book.deliveries:
            if d.subscription == sub and d.kind == "event-notification" and d.focus:
                first_arrival.setdefault(d.focus, d.arrived_ns)
        latencies = [
            (first_arrival[focus] - sent_ns) // 1000
            for focus, sent_ns in sent.items()
            if focus in first_arrival
        ]
        return {
            "subscription": sub,
            "handshake": shook,
            "actions": count,
            "ok": ok,
            "rate": rate,
            "received": len(latencies),
            "complete": complete,
            "latency_ms": _percentiles(latencies),
            "expected": {sub: ok},
        }

    async def subscribe_many(self) -> dict[str, Any]:
        total, fanout = int(self.spec["subscriptions"]), int(self.spec["fanout"])
        mark("subscribe-start")
        client = await self.client(8).open()
        matching: list[str] = []
        others: list[str] = []

        async def one(i: int) -> None:
            criteria = MATCHING_FILTER if i < fanout else nomatch_filter(i)
            sub = await self.subscribe(client, f"{self.hook_base}/s/{i}", criteria)
            if sub is not None:
                (matching if i < fanout else others).append(sub)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(total)))
        created_s = time.perf_counter() - t0
        everyone = set(matching) | set(others)
        all_shook = await self.book.wait(
            lambda: everyone <= self.book.handshakes, stall_s=float(self.spec["stall_s"])
        )
        handshakes_s = time.perf_counter() - t0
        mark("subscribe-end")
        client.close()
        return {
            "created": len(everyone),
            "matching": matching,
            "others": len(others),
            "created_s": created_s,
            "handshakes": len(everyone & self.book.handshakes),
            "all_handshakes": all_shook,
            "handshakes_s": handshakes_s,
        }

    async def burst(self, first: int, matching: list[str]) -> dict[str, Any]:
        count, connections = int(self.spec["burst"]), int(self.spec["connections"])
        before = {sub: self.book.event_arrivals[sub] for sub in matching}
        mark("burst-start")
        t0 = time.perf_counter_ns()
        writes = await self.closed_loop(range(first, first + count), connections)
        mark("burst-writes-end")
        writes_end_ns = time.perf_counter_ns()
        expected = len(matching) * writes["ok"]

        def arrived() -> int:
            return sum(self.book.event_arrivals[s] - before[s] for s in matching)

        complete = await self.book.wait(
            lambda: arrived() >= expected, stall_s=float(self.spec["stall_s"])
        )
        mark("burst-end")
        got = arrived()
        span_s = (self.book.last_arrival_ns - t0) / 1e9 if got else 0.0
        matched = set(matching)
        after = sum(
            1
            for d in self.book.deliveries
            if d.arrived_ns > writes_end_ns
            and d.kind == "event-notification"
            and d.subscription in matched
        )
        drain_s = (self.book.last_arrival_ns - writes_end_ns) / 1e9
        return {
            "writes": writes,
            "expected": expected,
            "arrivals": got,
            "complete": complete,
            "span_s": span_s,
            "rate": got / span_s if span_s > 0 else 0.0,
            "after_writes": after,
            "drain_s": drain_s,
            "drain_rate": after / drain_s if after and drain_s > 0 else 0.0,
            "expected_events": {sub: writes["ok"] for sub in matching},
        }

    async def run(self) -> dict[str, Any]:
        first = 0
        latency = await self.latency(first)
        first += int(self.spec["latency_count"])
        mark("writes-plain-start")
        plain = await self.closed_loop(
            range(first, first + int(self.spec["plain_writes"])), int(self.spec["connections"])
        )
        mark("writes-plain-end")
        first += int(self.spec["plain_writes"])
        subscribed = await self.subscribe_many()
        burst = await self.burst(first, subscribed["matching"])
        expected = {**latency.pop("expected"), **burst.pop("expected_events")}
        return {
            "latency": latency,
            "plain_writes": plain,
            "subscribe": subscribed | {"matching": len(subscribed["matching"])},
            "burst": burst,
            "correctness": correctness(self.book, expected),
            "errors": dict(self.errors),
            "error_samples": self.error_samples,
        }


def correctness(book: Book, expected: dict[str, int]) -> dict[str, Any]:
    """Per subscription, every number 1..expected must arrive (else lost); a repeat of a
    (subscription, number) is 'at once' if it arrived while an earlier copy was still being
    received or answered (two deliveries in flight together), else 'later' (a retry)."""
    copies: dict[tuple[str, int], list[Delivery]] = {}
    unexpected = 0
    for d in book.deliveries:
        if d.kind != "event-notification" or d.number is None:
            continue
        if d.number < 1 or d.number > expected.get(d.subscription, 0):
            unexpected += 1
        copies.setdefault((d.subscription, d.number), []).append(d)
    lost = sum(
        1 for sub, count in expected.items() for n in range(1, count + 1) if (sub, n) not in copies
    )
    at_once = later = 0
    out_of_order = 0
    for same in copies.values():
        same.sort(key=lambda d: d.first_byte_ns)
        busy_until = same[0].answered_ns
        for d in same[1:]:
            if d.first_byte_ns <= busy_until:
                at_once += 1
            else:
                later += 1
            busy_until = max(busy_until, d.answered_ns)
    highest: dict[str, int] = {}
    firsts = sorted((same[0] for same in copies.values()), key=lambda d: d.arrived_ns)
    for d in firsts:  # first copies in arrival order: a number below one already seen
        assert d.number is not None
        if d.number < highest.get(d.subscription, 0):
            out_of_order += 1
        highest[d.subscription] = max(highest.get(d.subscription, 0), d.number)
    return {
        "subscriptions_checked": len(expected),
        "events_expected": sum(expected.values()),
        "events_received": sum(1 for key in copies if key[1] <= expected.get(key[0], 0)),
        "lost": lost,
        "duplicated_at_once": at_once,
        "duplicated_later": later,
        "unexpected": unexpected,
        "out_of_order": out_of_order,
        "deliveries": len(book.deliveries),
        "unparsable": len(book.bad),
    }


def mark(name: str) -> None:
    sys.stdout.write(f"MARK {name}\n")
    sys.stdout.flush()


async def main_async(spec: dict[str, Any]) -> dict[str, Any]:
    book = Book()
    hold_s = float(spec.get("hold_ms", 0)) / 1000
    server = await asyncio.get_running_loop().create_server(
        lambda: Hook(book, hold_s), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    cpu0 = _cpu_seconds()
    try:
        result = await Driver(spec, book, f"http://127.0.0.1:{port}").run()
    finally:
        server.close()
    result["receiver_connections"] = Hook.connections
    result["driver_cpu_s"] = _cpu_seconds() - cpu0
    return result


def main() -> int:
    spec = json.loads(sys.stdin.read())
    loop = _install_uvloop()
    result = asyncio.run(main_async(spec))
    result["loop"] = loop
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
