"""Starting and stopping the servers under test, and reading their CPU and memory from /proc.

Layouts (``--layout``):

- ``reuseport``: N single-worker uvicorn processes (``python -m bench.serve --reuseport``),
  each with its own SO_REUSEPORT listening socket on the same port; the kernel spreads the
  keep-alive connections between them. The schema is migrated first, once, as the CLI does.
- ``uvicorn``: ``loopgate serve`` with ``LOOPGATE_WORKERS=N`` (uvicorn's own multi-process
  supervisor sharing one socket); the baseline gets the same ``uvicorn.run(workers=N)`` call.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.auth import SERVER_ENV

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPGATE_APP = "gateway.app:create_app_from_environment"
BASELINE_APP = "bench.baseline_app:create_app_from_environment"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    label: str
    layout: str
    workers: int
    port: int
    processes: list[subprocess.Popen[bytes]]
    log_path: Path
    _log_files: list[object] = field(default_factory=list)
    auth: dict[str, dict[str, str]] = field(default_factory=dict)
    """Request headers per organization (``bench.auth.credentials``), set once it is up."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The launched processes and all their descendants (uvicorn workers)."""
        roots = {p.pid for p in self.processes if p.poll() is None}
        return sorted(roots | descendants(roots))

    def worker_pids(self) -> list[int]:
        """Processes that serve requests: for uvicorn's supervisor, its worker children."""
        pids = self.pids()
        if self.layout == "uvicorn" and self.workers > 1:
            roots = {p.pid for p in self.processes}
            return [
                pid
                for pid in pids
                if pid not in roots and "multiprocessing.resource_tracker" not in cmdline(pid)
            ]
        return pids

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        for handle in self._log_files:
            handle.close()  # type: ignore[attr-defined]


def start(
    *,
    app: str,
    label: str,
    layout: str,
    workers: int,
    database_url: str,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    env = {
        **os.environ,
        **SERVER_ENV,
        "LOOPGATE_DATABASE_URL": database_url,
        "LOOPGATE_HOST": "127.0.0.1",
        "LOOPGATE_PORT": str(port),
        "LOOPGATE_WORKERS": str(workers),
        **(extra_env or {}),
    }
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    log_path = workdir / f"{label}-{layout}{workers}-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by Server.stop
    ready_files: list[Path] = []
    processes: list[subprocess.Popen[bytes]] = []
    if layout == "uvicorn" and app == LOOPGATE_APP:
        commands = [[str(Path(sys.executable).with_name("loopgate")), "serve"]]
    elif layout == "uvicorn":
        commands = [
            [
                sys.executable,
                "-m",
                "bench.serve",
                "--app",
                app,
                "--port",
                str(port),
                "--workers",
                str(workers),
            ]
        ]
    else:
        commands = []
        for n in range(workers):
            ready = workdir / f"ready-{port}-{n}"
            ready.unlink(missing_ok=True)
            ready_files.append(ready)
            commands.append(
                [
                    sys.executable,
                    "-m",
                    "bench.serve",
                    "--app",
                    app,
                    "--port",
                    str(port),
                    "--reuseport",
                    "--ready-file",
                    str(ready),
                ]
            )
    for command in commands:
        processes.append(
            subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=workdir,
            )
        )
    server = Server(label, layout, workers, port, processes, log_path, [log])
    try:
        _wait_ready(server, ready_files)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Server, ready_files: list[Path], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            tail = server.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{server.label} exited during startup:\n{tail}")
        if all(f.exists() for f in ready_files) and _healthy(server.base_url):
            if server.layout == "uvicorn" and server.workers > 1:
                _wait_workers(server, deadline)
            return
        time.sleep(0.2)
    raise TimeoutError(f"{server.label} did not become healthy in {timeout:.0f} s")


def _wait_workers(server: Server, deadline: float) -> None:
    """uvicorn's supervisor: wait until each worker has started and finished its warm-up
    (its CPU use settles), since /healthz may be answered by the first one alone."""
    while time.monotonic() < deadline:
        workers = server.worker_pids()
        if len(workers) >= server.workers:
            before = cpu_seconds(workers)
            time.sleep(0.5)
            after = cpu_seconds(workers)
            if all(after.get(p, 0) - before.get(p, 0) < 0.05 for p in workers):
                return
        else:
            time.sleep(0.2)


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# -- /proc readings ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces; everything after the last ')' is space separated
    return text[text.rindex(")") + 2 :].split()


def descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """user+system CPU seconds of each process (state 3 fields after comm: utime=11, stime=12)."""
    out = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def postgres_cpu_seconds() -> float:
    """CPU of every postgres process on the machine (server and backends)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("postgres"):
            fields = _stat_fields(int(entry))
            if fields:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds over all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def peak_rss_kb(pids: list[int]) -> dict[int, int]:
    """VmHWM (peak resident set) of each process, in kB."""
    out = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[pid] = int(line.split()[1])
        except OSError:
            continue
    return out
