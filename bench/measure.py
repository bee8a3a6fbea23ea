"""One timed run: start the load generator process, read server CPU around its measured window."""

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profile as sampling
from bench.server import (
    REPO_ROOT,
    Server,
    cmdline,
    cpu_seconds,
    machine_busy_seconds,
    postgres_cpu_seconds,
)


@dataclass
class Measurement:
    workload: str
    app: str
    backend: str
    layout: str
    workers: int
    connections: int
    result: dict[str, Any]
    server_cpu: dict[int, float]
    server_processes: dict[int, str]
    postgres_cpu: float
    machine_busy_pct: float
    other_cpu_pct: float
    """CPU used by processes that are neither the server, its database nor the load generator,
    as a percentage of the machine (all cores): another workload sharing the box."""
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return int(self.result["requests"])

    @property
    def ok_rate(self) -> float:
        return float(self.result["ok_rate"])

    @property
    def errors(self) -> int:
        return int(self.result["errors"])

    @property
    def latency(self) -> dict[str, float]:
        return dict(self.result["latency_ms"])

    def server_cpu_ms_per_request(self) -> float:
        return 1000 * sum(self.server_cpu.values()) / max(self.requests, 1)

    def postgres_cpu_ms_per_request(self) -> float:
        return 1000 * self.postgres_cpu / max(self.requests, 1)

    def worker_split(self) -> str:
        """Each serving process's share of the server CPU, e.g. '52/48 %'."""
        total = sum(self.server_cpu.values())
        if total <= 0 or len(self.server_cpu) < 2:
            return "-"
        shares = sorted((100 * v / total for v in self.server_cpu.values()), reverse=True)
        return "/".join(f"{s:.0f}" for s in shares) + " %"


def run_load(
    server: Server,
    workload: str,
    *,
    backend: str,
    app: str,
    duration: float,
    warmup: float,
    connections: int,
    params: dict[str, Any],
    profile: tuple[str, Path] | None = None,
) -> Measurement:
    spec = {
        "host": "127.0.0.1",
        "port": server.port,
        "connections": connections,
        "duration": duration,
        "warmup": warmup,
        "workload": workload,
        "auth": server.auth,
        "params": params,
    }
    env = {**os.environ, "BENCH_LOADGEN_SIGNALS": "1", "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    watchdog = threading.Timer(duration + warmup + 120, process.kill)
    watchdog.start()
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps(spec))
        process.stdin.close()
        pids = server.worker_pids()
        line = process.stdout.readline().strip()
        cpu0, pg0, busy0 = cpu_seconds(pids), postgres_cpu_seconds(), machine_busy_seconds()
        profilers = []
        if profile is not None and line == "START":
            label = f"{backend}-{app}-{workload}"
            profilers = sampling.start(profile[0], pids, duration - 0.5, profile[1], label)
        if line == "START":
            line = process.stdout.readline().strip()
        cpu1, pg1, busy1 = cpu_seconds(pids), postgres_cpu_seconds(), machine_busy_seconds()
        profile_files = sampling.finish(profilers)
        rest = process.stdout.read()
        stderr = process.stderr.read() if process.stderr else ""
        process.wait(30)
    finally:
        watchdog.cancel()
    if process.returncode != 0 or line != "STOP":
        raise RuntimeError(f"load generator failed ({process.returncode}): {stderr[-2000:]}")
    result = json.loads(rest.strip().splitlines()[-1])
    busy = busy1[0] - busy0[0]
    wall = busy1[1] - busy0[1]
    server_cpu = {pid: cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0) for pid in cpu0}
    postgres_cpu = pg1 - pg0 if backend == "postgres" else 0.0
    ours = sum(server_cpu.values()) + postgres_cpu + float(result["loadgen_cpu_s"])
    return Measurement(
        workload=workload,
        app=app,
        backend=backend,
        layout=server.layout,
        workers=server.workers,
        connections=connections,
        result=result,
        server_cpu=server_cpu,
        server_processes={pid: cmdline(pid)[:80] for pid in cpu0},
        postgres_cpu=postgres_cpu,
        machine_busy_pct=100 * busy / wall if wall else 0.0,
        other_cpu_pct=100 * max(0.0, busy - ours) / wall if wall else 0.0,
        profile=sampling.summarize(profile_files) if profile_files else [],
    )
