"""``python -m bench``: measure Loopgate against its targets and against a bare baseline.

For each backend (a temp SQLite file; a fresh, uniquely named PostgreSQL database, dropped at
the end) it starts Loopgate as a real server on loopback, seeds it, runs the workloads with a
separate load-generator process, then does the same for the baseline app, and prints a table.
Read bench/README.md for what each number means.
"""

import argparse
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import notifications, payloads, report, seed
from bench.auth import credentials
from bench.db import DEFAULT_POSTGRES, Database, analyze, database_size_mb, row_counts, versions
from bench.measure import Measurement, run_load
from bench.profile import find_py_spy
from bench.server import BASELINE_APP, LOOPGATE_APP, Server, peak_rss_kb, start
from conformance.fhir_time import format_instant
from gateway.fhir.write_context import now_us
from gateway.store.engine import make_engine

DAY_US = 86_400 * 1_000_000
SPAN_DAYS = 100
RECENT_FRACTION = 0.015


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s runs, 10k Tasks")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--duration", type=float, help="seconds per timed run (default 8)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each run")
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument(
        "--layout",
        choices=("reuseport", "uvicorn"),
        default="reuseport",
        help="reuseport: N single-worker processes sharing the port via SO_REUSEPORT "
        "(default); uvicorn: `loopgate serve` with LOOPGATE_WORKERS=N",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tasks", type=int, help="Tasks stored for the search (default 100k)")
    parser.add_argument(
        "--layout-check",
        choices=("first", "all", "none"),
        help="also run referrals with 1 worker, uvicorn --workers 2 and 2×SO_REUSEPORT "
        "(default: first backend; none with --quick)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="admin connection")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the Loopgate server with py-spy during the referral and status-update "
        "runs; raw stacks go to DIR and a summary is printed",
    )
    parser.add_argument("--py-spy", help="path of the py-spy binary (default: on PATH)")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each timed run, wait up to SECONDS for other processes to go quiet "
        "(< 10 %% of the machine); for shared machines",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with logs")
    parser.add_argument(
        "--notifications",
        choices=("yes", "no", "only"),
        default="yes",
        help="the subscription workload (after the others; 'only': skip the others)",
    )
    parser.add_argument(
        "--fanout",
        type=int,
        default=10,
        help="of the 1,000 subscriptions, how many match every Task write (default 10)",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    args.tasks = args.tasks or (10_000 if args.quick else 100_000)
    args.layout_check = args.layout_check or ("none" if args.quick else "first")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.measurements: list[Measurement] = []
        self.rss: dict[tuple[str, str], dict[int, int]] = {}
        self.search: dict[str, dict[str, Any]] = {}
        self.rows_per_op: dict[tuple[str, str, str], dict[str, float]] = {}
        self.notes: list[str] = []
        self.layout_checks: list[Measurement] = []
        self.templates: dict[str, dict[seed.Kind, seed.Template]] = {}
        self.log_findings: dict[str, list[str]] = {}
        self.notification_runs: list[notifications.NotificationRun] = []

    def say(self, text: str) -> None:
        print(text, flush=True)

    # -- plumbing ---------------------------------------------------------------------------

    def start(
        self,
        app: str,
        database: Database,
        label: str,
        env: dict[str, str] | None = None,
        **overrides: Any,
    ) -> Server:
        layout = overrides.get("layout", self.args.layout)
        workers = overrides.get("workers", self.args.workers)
        t0 = time.perf_counter()
        server = start(
            app=app,
            label=label,
            layout=layout,
            workers=workers,
            database_url=database.url,
            workdir=self.workdir,
            extra_env=env,
        )
        engine = make_engine(database.url)
        try:
            server.auth = credentials(
                engine,
                audience=f"{server.base_url}/fhir",
                organizations=payloads.ORGANIZATIONS,
            )
        except BaseException:
            server.stop()
            raise
        finally:
            engine.dispose()
        self.say(
            f"  started {label} ({layout}, {workers} worker(s), port {server.port}) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        return server

    def stop(self, server: Server, key: str) -> None:
        server.stop()
        self.log_findings[key] = report.scan_log(server.log_path)

    def load(
        self,
        server: Server,
        workload: str,
        *,
        backend: str,
        app: str,
        params: dict[str, Any],
        connections: int | None = None,
        duration: float | None = None,
        profile: bool = False,
    ) -> Measurement:
        sampler = None
        if profile and self.args.profile is not None:
            py_spy = find_py_spy(self.args.py_spy)
            if py_spy is None:
                self.notes.append("--profile: py-spy not found; no profiles taken")
            else:
                sampler = (py_spy, self.args.profile)
        if self.args.wait_idle > 0:
            waited, busy = report.wait_idle(self.args.wait_idle)
            if waited >= 1:
                self.say(f"    (waited {waited:.0f} s for the machine to go quiet: {busy:.0f} %)")
        m = run_load(
            server,
            workload,
            backend=backend,
            app=app,
            duration=duration or self.args.duration,
            warmup=self.args.warmup,
            connections=connections or self.args.connections,
            params=params,
            profile=sampler,
        )
        self.say("    " + report.one_line(m))
        return m

    # -- one backend --------------------------------------------------------------------------

    def run_backend(self, backend: str, *, layout_check: bool) -> None:
        args = self.args
        self.say(f"\n== {backend} ==")
        database = Database(backend, self.workdir, "lg", args.postgres_url)
        baseline_db = None
        try:
            database.migrate()
            self.run_loopgate(backend, database, layout_check=layout_check)
            if args.notifications != "no":
                self.run_notifications(backend, database)
            if not args.no_baseline and args.notifications != "only":
                baseline_db = Database(backend, self.workdir, "base", args.postgres_url)
                baseline_db.migrate()
                self.run_baseline(backend, baseline_db)
        finally:
            database.drop()
            if baseline_db is not None:
                baseline_db.drop()

    def status_task_count(self, referral_rate: float) -> int:
        """Enough Tasks for the status-update run: a status update costs less than a referral,
        so 8× the referral rate (at most 2,500/s) over the run, plus a margin."""
        seconds = self.args.duration + self.args.warmup
        rate = min(2500.0, max(250.0, 8 * referral_rate))
        return int(rate * seconds) + 1000

    def run_loopgate(self, backend: str, database: Database, *, layout_check: bool) -> None:
        args = self.args
        server = self.start(LOOPGATE_APP, database, "loopgate")
        engine = make_engine(database.url)
        try:
            client = seed.ApiClient("127.0.0.1", server.port, server.auth)
            t0 = time.perf_counter()
            written = seed.seed_network_and_pools(client)
            self.say(
                f"  seeded {written} resources through the API in {time.perf_counter() - t0:.1f} s"
            )
            t0 = time.perf_counter()
            templates = seed.capture_templates(engine, client)
            self.templates[backend] = templates
            self.say(
                f"  captured {len(templates)} API-written template Tasks in "
                f"{time.perf_counter() - t0:.1f} s; rows per requested Task: "
                + templates[seed.INBOX_KINDS[0]].summary()
            )
            if args.notifications == "only":
                client.close()
                return
            now = now_us()
            span = SPAN_DAYS * DAY_US
            t0 = time.perf_counter()
            rows = seed.seed_inbox_tasks(engine, templates, args.tasks, now=now, span_us=span)
            analyze(engine)
            self.say(
                f"  bulk-seeded {args.tasks} inbox Tasks ({rows} rows) in "
                f"{time.perf_counter() - t0:.1f} s; "
                f"database {database_size_mb(database, engine):.0f} MB"
            )
            since = format_instant(now - int(span * RECENT_FRACTION))
            self.search[backend] = self.check_search(client, since, now=now, span=span)
            self.say(
                f"  search slice: _lastUpdated=gt{since} (newest {RECENT_FRACTION:.1%} of "
                f"{args.tasks} Tasks); {self.search[backend]['matches']} match "
                f"owner+status+date, total reported {self.search[backend]['total']}"
            )
            client.close()
            params = {"since": since}
            # (d) first, before the other workloads add recent Tasks
            self.measurements.append(
                self.load(
                    server,
                    "task-search",
                    backend=backend,
                    app="loopgate",
                    params=params,
                    connections=1,
                    duration=max(2.0, args.duration / 2),
                )
            )
            self.measurements.append(
                self.load(server, "task-search", backend=backend, app="loopgate", params=params)
            )
            self.measure_writes(server, engine, backend, "loopgate")
            self.rss[(backend, "loopgate")] = peak_rss_kb(server.worker_pids())
        finally:
            self.stop(server, f"{backend} loopgate")
            engine.dispose()
        if layout_check:
            self.run_layout_check(backend, database)

    def measure_writes(self, server: Server, engine: Any, backend: str, app: str) -> None:
        tag = f"{app[:2]}{int(time.time())}"
        before = row_counts(engine)
        profile = app == "loopgate"
        m = self.load(
            server, "referrals", backend=backend, app=app, params={"tag": tag}, profile=profile
        )
        self.measurements.append(m)
        after = row_counts(engine)
        self.rows_per_op[(backend, app, "referral")] = {
            t: (after[t] - before[t]) / max(m.result["issued"], 1) for t in after
        }
        count = self.status_task_count(m.ok_rate)
        t0 = time.perf_counter()
        seed.seed_status_tasks(engine, self.templates[backend], count, now=now_us())
        self.say(f"    (bulk-seeded {count} requested Tasks in {time.perf_counter() - t0:.1f} s)")
        before = row_counts(engine)
        m = self.load(
            server,
            "status-updates",
            backend=backend,
            app=app,
            params={"count": count},
            profile=profile,
        )
        if m.result["exhausted"]:
            m.notes.append("ran out of pre-created Tasks: the rate is a lower bound")
        self.measurements.append(m)
        after = row_counts(engine)
        self.rows_per_op[(backend, app, "status update")] = {
            t: (after[t] - before[t]) / max(m.result["issued"], 1) for t in after
        }
        self.measurements.append(
            self.load(server, "crud-mix", backend=backend, app=app, params={"tag": f"{tag}c"})
        )

    def check_search(
        self, client: seed.ApiClient, since: str, *, now: int, span: int
    ) -> dict[str, Any]:
        """One request before the timed run: the answer must be 200 and its total right."""
        expected = 0
        for i in range(self.args.tasks):
            kind, times = seed.inbox_task(i, now=now, span_us=span, count=self.args.tasks)
            if (
                kind.owner == payloads.CBO_INBOX
                and not kind.accepted
                and times[-1] > now - int(span * RECENT_FRACTION)
            ):
                expected += 1
        path = f"/fhir/Task?owner={payloads.CBO_INBOX}&status=requested&_lastUpdated=gt{since}"
        status, answer = client.call("GET", path, payloads.CBO_INBOX)
        total = answer.get("total") if isinstance(answer, dict) else None
        if status != 200 or total != expected:
            self.notes.append(
                f"search check: status {status}, total {total}, expected {expected} matches"
            )
        page = len(answer.get("entry", [])) if isinstance(answer, dict) else 0
        return {"matches": expected, "total": total, "page": page, "since": since}

    def run_layout_check(self, backend: str, database: Database) -> None:
        """Referrals with 1 worker, uvicorn --workers 2 (shared socket), 2× SO_REUSEPORT."""
        self.say("  worker layout check (referrals):")
        for layout, workers in (("uvicorn", 1), ("uvicorn", 2), ("reuseport", 2)):
            server = self.start(LOOPGATE_APP, database, "loopgate", layout=layout, workers=workers)
            try:
                m = self.load(
                    server,
                    "referrals",
                    backend=backend,
                    app="loopgate",
                    params={"tag": f"lc{layout}{workers}{int(time.time())}"},
                    duration=max(2.0, self.args.duration / 2),
                )
                self.layout_checks.append(m)
            finally:
                self.stop(server, f"{backend} loopgate {layout}{workers}")

    def run_notifications(self, backend: str, database: Database) -> None:
        """The subscription workload on its own server start (bench/notifications.py)."""
        plan = notifications.plan(quick=self.args.quick, fanout=self.args.fanout)
        engine = make_engine(database.url)
        try:
            t0 = time.perf_counter()
            notifications.seed_tasks(engine, self.templates[backend], plan.tasks, now_us())
            self.say(
                f"  notifications: bulk-seeded {plan.tasks} requested Tasks in "
                f"{time.perf_counter() - t0:.1f} s"
            )
        finally:
            engine.dispose()
        server = self.start(
            LOOPGATE_APP, database, "loopgate-notifications", env=notifications.OUTBOX_ENV
        )
        try:
            if self.args.wait_idle > 0:
                waited, busy = report.wait_idle(self.args.wait_idle)
                if waited >= 1:
                    self.say(
                        f"    (waited {waited:.0f} s for the machine to go quiet: {busy:.0f} %)"
                    )
            t0 = time.perf_counter()
            sampler = None
            if self.args.profile is not None:
                py_spy = find_py_spy(self.args.py_spy)
                sampler = (py_spy, self.args.profile) if py_spy else None
            run = notifications.run(server, backend=backend, plan=plan, profile=sampler)
            self.notification_runs.append(run)
            self.say(f"    {notifications.one_line(run)} ({time.perf_counter() - t0:.0f} s)")
        finally:
            self.stop(server, f"{backend} loopgate notifications")

    def run_baseline(self, backend: str, database: Database) -> None:
        server = self.start(BASELINE_APP, database, "baseline")
        engine = make_engine(database.url)
        try:
            client = seed.ApiClient("127.0.0.1", server.port, server.auth)
            seed.seed_network_and_pools(client)
            client.close()
            analyze(engine)
            self.measure_writes(server, engine, backend, "baseline")
            self.rss[(backend, "baseline")] = peak_rss_kb(server.worker_pids())
        finally:
            self.stop(server, f"{backend} baseline")
            engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="loopgate-bench-"))
    bench = Bench(args, workdir)
    info = report.machine_info() | versions(args.postgres_url if "postgres" in backends else None)
    info["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    info["idle check"] = report.idle_check()
    print(f"machine before start: {info['idle check']}", flush=True)
    print(
        f"Loopgate bench: {', '.join(backends)}; {args.duration:g} s runs (+{args.warmup:g} s "
        f"warm-up), {args.connections} keep-alive connections, {args.workers} server "
        f"process(es) [{args.layout}], {args.tasks} Tasks for the search; workdir {workdir}",
        flush=True,
    )
    try:
        for n, backend in enumerate(backends):
            check = args.layout_check == "all" or (args.layout_check == "first" and n == 0)
            try:
                bench.run_backend(backend, layout_check=check)
            except Exception as error:  # report what did run, then the failure
                traceback.print_exc()
                bench.notes.append(f"{backend}: run aborted: {type(error).__name__}: {error}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
    report.print_report(bench, info, elapsed=time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
