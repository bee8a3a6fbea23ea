"""The subscription workload: CBO action → rest-hook notification latency, notifications per
second with 1,000 active subscriptions, and whether any event is lost or duplicated across the
server processes.

The orchestrator side: seed the requested Tasks the CBO will act on, start Loopgate with the
outbox settings below, run ``python -m bench.receiver`` (the subscriber and the CBO in one
process, see there), and read server and PostgreSQL CPU at the phase marks it prints.
"""

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profile as sampling
from bench import seed
from bench.receiver import TASK_PREFIX
from bench.server import REPO_ROOT, Server, cpu_seconds, machine_busy_seconds, postgres_cpu_seconds

OUTBOX_ENV = {
    "LOOPGATE_OUTBOX_POLL_INTERVAL_S": "1.0",
    "LOOPGATE_OUTBOX_BATCH_SIZE": "16",
    "LOOPGATE_OUTBOX_CONCURRENCY": "16",
}
"""The product defaults, set explicitly so the report can say what ran."""

PROFILE_S = 8.0
LATENCY_P99_MS = 250.0
NOTIFICATIONS_PER_S = 500.0


@dataclass(frozen=True)
class Plan:
    latency_count: int
    latency_rate: float
    plain_writes: int
    subscriptions: int
    fanout: int
    burst: int
    connections: int = 8
    hold_ms: float = 2.0
    stall_s: float = 30.0

    @property
    def tasks(self) -> int:
        return self.latency_count + self.plain_writes + self.burst

    def spec(self) -> dict[str, Any]:
        return {
            "latency_count": self.latency_count,
            "latency_rate": self.latency_rate,
            "plain_writes": self.plain_writes,
            "subscriptions": self.subscriptions,
            "fanout": self.fanout,
            "burst": self.burst,
            "connections": self.connections,
            "hold_ms": self.hold_ms,
            "stall_s": self.stall_s,
        }


def plan(*, quick: bool, fanout: int) -> Plan:
    if quick:
        return Plan(
            latency_count=60, latency_rate=20, plain_writes=200, subscriptions=1000,
            fanout=fanout, burst=max(20, 1500 // fanout),
        )  # fmt: skip
    return Plan(
        latency_count=300, latency_rate=20, plain_writes=800, subscriptions=1000,
        fanout=fanout, burst=max(50, 3000 // fanout),
    )  # fmt: skip


@dataclass
class Phase:
    server_cpu_s: float
    postgres_cpu_s: float
    machine_busy_pct: float


@dataclass
class NotificationRun:
    backend: str
    plan: Plan
    result: dict[str, Any]
    phases: dict[str, Phase]
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)

    @property
    def latency(self) -> dict[str, float]:
        return dict(self.result["latency"]["latency_ms"])

    @property
    def burst(self) -> dict[str, Any]:
        return dict(self.result["burst"])

    @property
    def checks(self) -> dict[str, int]:
        return dict(self.result["correctness"])

    def cpu_ms_per_notification(self) -> float:
        phase = self.phases.get("burst")
        got = self.burst["arrivals"]
        if phase is None or not got:
            return 0.0
        return 1000 * (phase.server_cpu_s + phase.postgres_cpu_s) / got


def seed_tasks(engine: Any, templates: dict[seed.Kind, seed.Template], count: int, now: int) -> int:
    return seed.seed_status_tasks(engine, templates, count, now=now, prefix=TASK_PREFIX)


def run(
    server: Server, *, backend: str, plan: Plan, profile: tuple[str, Path] | None = None
) -> NotificationRun:
    """``profile``: (py-spy, directory) to sample the servers for the first
    ``PROFILE_S`` seconds of the burst (the Task writes, then the deliveries)."""
    spec = {"host": "127.0.0.1", "port": server.port, "auth": server.auth, **plan.spec()}
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.receiver"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    watchdog = threading.Timer(900, process.kill)
    watchdog.start()
    pids = server.worker_pids()
    readings: dict[str, tuple[dict[int, float], float, tuple[float, float]]] = {}
    result: dict[str, Any] | None = None
    profilers: list[Any] = []
    profile_files: list[Path] = []
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps(spec))
        process.stdin.close()
        for line in process.stdout:
            if line.startswith("MARK "):
                readings[line[5:].strip()] = (
                    cpu_seconds(pids),
                    postgres_cpu_seconds(),
                    machine_busy_seconds(),
                )
                if profile is not None and line.strip() == "MARK burst-start":
                    label = f"{backend}-loopgate-notifications-burst"
                    profilers = sampling.start(profile[0], pids, PROFILE_S, profile[1], label)
                elif line.strip() == "MARK burst-end":
                    profile_files = sampling.finish(profilers)
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        stderr = process.stderr.read() if process.stderr else ""
        process.wait(30)
    finally:
        watchdog.cancel()
    if process.returncode != 0 or result is None:
        raise RuntimeError(f"receiver failed ({process.returncode}): {stderr[-3000:]}")
    phases = {}
    for name in ("latency", "writes-plain", "subscribe", "burst"):
        start, end = readings.get(f"{name}-start"), readings.get(f"{name}-end")
        if start is None or end is None:
            continue
        wall = end[2][1] - start[2][1]
        phases[name] = Phase(
            server_cpu_s=sum(end[0].get(p, 0.0) - start[0].get(p, 0.0) for p in start[0]),
            postgres_cpu_s=end[1] - start[1] if backend == "postgres" else 0.0,
            machine_busy_pct=100 * (end[2][0] - start[2][0]) / wall if wall else 0.0,
        )
    if os.environ.get("BENCH_NOTIFICATIONS_DUMP"):
        Path(os.environ["BENCH_NOTIFICATIONS_DUMP"]).write_text(json.dumps(result, indent=1))
    notes = []
    if result["errors"]:
        notes.append(f"errors: {result['errors']} e.g. {result['error_samples'][:2]}")
    if not result["latency"]["complete"] or not result["burst"]["complete"]:
        notes.append("some notifications never arrived (waited until nothing came for 30 s)")
    if not result["subscribe"]["all_handshakes"]:
        notes.append("not every subscription got its handshake")
    summary = sampling.summarize(profile_files) if profile_files else []
    return NotificationRun(backend, plan, result, phases, notes, summary)


def one_line(run: NotificationRun) -> str:
    lat, burst, checks = run.latency, run.burst, run.checks
    sub = run.result["subscribe"]
    return (
        f"notifications: latency p50 {lat.get('p50', 0):.1f} ms p99 {lat.get('p99', 0):.1f} ms "
        f"max {lat.get('max', 0):.0f} ms (n={run.result['latency']['received']}); "
        f"{sub['created']} subscriptions, handshakes all in {sub['handshakes_s']:.1f} s; "
        f"burst {burst['arrivals']}/{burst['expected']} in {burst['span_s']:.1f} s = "
        f"{burst['rate']:.0f}/s; writes/s {run.result['plain_writes']['rate']:.0f} without, "
        f"{burst['writes']['rate']:.0f} with; lost {checks['lost']}, duplicated at once "
        f"{checks['duplicated_at_once']}, later {checks['duplicated_later']}"
    )
