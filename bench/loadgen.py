"""A minimal HTTP/1.1 keep-alive load generator on raw asyncio sockets (uvloop when present).

Runs as its own process: ``python -m bench.loadgen`` reads a JSON spec on stdin and writes a
JSON result on stdout, so it never shares an interpreter (or a GIL) with the server or with
the orchestrator. N connections each loop send → wait for the whole response → record latency
→ send the next, until the duration is up (a closed loop, like wrk). A request factory from
``bench.workloads`` builds each request; its CPU is part of the generator's reported CPU.

``python -m bench.loadgen --selftest`` measures the generator's own ceiling against a trivial
raw responder (and httpx's, for comparison); see bench/README.md.
"""

import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter
from typing import Any, cast

from bench.workloads import WORKLOADS, Request, Workload


class ResponseReader(asyncio.Protocol):
    """Parses HTTP/1.1 responses off one keep-alive connection (Content-Length or chunked)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._try_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("server closed the connection"))

    def send(self, raw: bytes) -> "asyncio.Future[tuple[int, bytes]]":
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def _try_complete(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        status = int(head[9:12])
        length = None
        chunked = False
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        start = end + 4
        if chunked:
            stop = self.buffer.find(b"\r\n0\r\n\r\n", start - 2)
            if stop < 0:
                return
            body, total = bytes(self.buffer[start:stop]), stop + 7
        else:
            if length is None:
                length = 0
            if len(self.buffer) < start + length:
                return
            body, total = bytes(self.buffer[start : start + length]), start + length
        del self.buffer[:total]
        self.waiter = None
        waiter.set_result((status, body))


class Run:
    def __init__(self, spec: dict[str, Any], workload: Workload) -> None:
        self.spec = spec
        self.workload = workload
        self.counter = 0
        self.exhausted = False
        self.latencies: list[int] = []
        self.by_kind: dict[str, list[int]] = {}
        self.statuses: Counter[str] = Counter()
        self.errors = 0
        self.error_samples: list[str] = []
        self.measuring = False
        self.stop_at = 0.0
        self.reconnects = 0

    def next_request(self) -> Request | None:
        if self.exhausted:
            return None
        request = self.workload.request(self.counter)
        if request is None:
            self.exhausted = True
            return None
        self.counter += 1
        return request

    async def connect(self) -> ResponseReader:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            ResponseReader, self.spec["host"], self.spec["port"]
        )
        return protocol

    async def connection(self) -> None:
        reader = await self.connect()
        while time.perf_counter() < self.stop_at:
            request = self.next_request()
            if request is None:
                break
            started = time.perf_counter_ns()
            try:
                status, body = await reader.send(request.raw)
            except ConnectionError:
                status, body = 599, b"connection closed"
            elapsed_us = (time.perf_counter_ns() - started) // 1000
            if self.measuring:
                self.latencies.append(elapsed_us)
                self.by_kind.setdefault(request.kind, []).append(elapsed_us)
                self.statuses[f"{request.kind} {status}"] += 1
                if status not in request.ok:
                    self.errors += 1
                    if len(self.error_samples) < 5:
                        self.error_samples.append(f"{request.kind} {status}: {body[:300]!r}")
            if reader.closed:
                self.reconnects += 1
                reader = await self.connect()
        if reader.transport is not None:
            reader.transport.close()

    async def run(self) -> dict[str, Any]:
        duration = float(self.spec["duration"])
        warmup = float(self.spec.get("warmup", 0.0))
        connections = int(self.spec["connections"])
        begin = time.perf_counter()
        self.stop_at = begin + warmup + duration
        tasks = [asyncio.create_task(self.connection()) for _ in range(connections)]
        if warmup:
            await asyncio.sleep(warmup)
        self.measuring = True
        _signal("START")
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        _signal("STOP")
        count = len(self.latencies)
        return {
            "requests": count,
            "elapsed": elapsed,
            "rate": count / elapsed if elapsed else 0.0,
            "ok": count - self.errors,
            "ok_rate": (count - self.errors) / elapsed if elapsed else 0.0,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "statuses": dict(self.statuses),
            "latency_ms": _percentiles(self.latencies),
            "latency_ms_by_kind": {k: _percentiles(v) for k, v in self.by_kind.items()},
            "exhausted": self.exhausted,
            "issued": self.counter,
            "reconnects": self.reconnects,
            "loadgen_cpu_s": cpu,
            "loadgen_cpu_pct": 100 * cpu / elapsed if elapsed else 0.0,
        }


def _signal(word: str) -> None:
    """Tell the parent the measured window starts/ends, so it can read server CPU there."""
    if os.environ.get("BENCH_LOADGEN_SIGNALS"):
        sys.stdout.write(word + "\n")
        sys.stdout.flush()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": ordered[-1] / 1000,
        "mean": sum(ordered) / len(ordered) / 1000,
    }


def _install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] ships it
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    loop_name = _install_uvloop()
    workload = WORKLOADS[spec["workload"]](spec)
    result = asyncio.run(Run(spec, workload).run())
    result["loop"] = loop_name
    return result


# -- selftest: how fast is the generator itself? --------------------------------------------

_CANNED = (
    b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n{"ok":true}'
)


class _Canned(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(_CANNED * data.count(b"\r\n\r\n"))


def _serve_canned(port_out: Any) -> None:
    _install_uvloop()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Canned, "127.0.0.1", 0)
        port_out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def _httpx_client(port: int, connections: int, duration: float) -> tuple[int, float]:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    count = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        stop = time.perf_counter() + duration

        async def one() -> None:
            nonlocal count
            while time.perf_counter() < stop:
                response = await client.get("/", headers={"Accept": "application/json"})
                response.read()
                count += 1

        cpu0 = _cpu_seconds()
        await asyncio.gather(*(one() for _ in range(connections)))
        return count, _cpu_seconds() - cpu0


def selftest(duration: float = 3.0, connections: int = 32) -> dict[str, Any]:
    import multiprocessing

    queue: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve_canned, args=(queue,), daemon=True)
    server.start()
    try:
        port = queue.get(timeout=10)
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "connections": connections,
            "duration": duration,
            "workload": "task-search",
            "auth": {"Organization/bench-food-bank": {}},
            "params": {"since": "2026-01-01T00:00:00Z"},
        }
        raw = run_spec(spec)
        loop = asyncio.new_event_loop()
        try:
            count, cpu = loop.run_until_complete(_httpx_client(port, connections, duration))
        finally:
            loop.close()
        return {
            "raw_rps": raw["rate"],
            "raw_cpu_us_per_request": 1e6 * raw["loadgen_cpu_s"] / max(raw["requests"], 1),
            "httpx_rps": count / duration,
            "httpx_cpu_us_per_request": 1e6 * cpu / max(count, 1),
        }
    finally:
        server.terminate()
        server.join(5)


def main() -> int:
    if "--selftest" in sys.argv:
        print(json.dumps(selftest()))
        return 0
    spec = json.loads(sys.stdin.read())
    print(json.dumps(run_spec(spec)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
