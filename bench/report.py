"""Printing: the summary table against the targets, run details, machine info, log findings."""

import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.measure import Measurement

if TYPE_CHECKING:
    from bench.__main__ import Bench
    from bench.notifications import NotificationRun

TITLES = {
    "referrals": "(a) referrals created /s",
    "status-updates": "(b) Task status updates /s (200s)",
    "crud-mix": "(c) CRUD mix req/s",
}
TARGETS: dict[tuple[str, str], tuple[str, float, str]] = {
    ("referrals", "sqlite"): (">=", 500, "≥ 500"),
    ("referrals", "postgres"): (">=", 400, "≥ 400"),
    ("status-updates", "sqlite"): (">=", 800, "≥ 800"),
    ("status-updates", "postgres"): (">=", 800, "≥ 800"),
    ("crud-mix", "sqlite"): (">=", 1300, "≥ 1,300"),
    ("crud-mix", "postgres"): (">=", 1300, "≥ 1,300"),
}
"""Throughput targets (all are minimums); the search and memory targets follow."""
SEARCH_P99_MS = 50.0
RSS_MB = 300.0
OTHER_CPU_WARN = 10.0


def machine_info() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    info = {"cpu": model, "cores": str(os.cpu_count()), "memory": memory}
    try:
        from importlib.metadata import version

        info["stack"] = ", ".join(
            f"{name} {version(name)}"
            for name in (
                "fastapi",
                "starlette",
                "uvicorn",
                "uvloop",
                "httptools",
                "SQLAlchemy",
                "psycopg",
                "fhir.resources",
                "pydantic",
                "orjson",
            )
        )
    except Exception:  # pragma: no cover - informational only
        pass
    return info


def idle_check(seconds: float = 2.0) -> str:
    """How busy the machine is before we start anything (others' processes)."""
    from bench.server import machine_busy_seconds

    busy0, total0 = machine_busy_seconds()
    time.sleep(seconds)
    busy1, total1 = machine_busy_seconds()
    pct = 100 * (busy1 - busy0) / max(total1 - total0, 1e-9)
    warning = " — NOT idle: results will be depressed" if pct > OTHER_CPU_WARN else ""
    return f"{pct:.0f} % of all cores busy over {seconds:g} s{warning}"


def wait_idle(limit: float, threshold: float = OTHER_CPU_WARN) -> tuple[float, float]:
    """Poll 1 s windows until the machine is below ``threshold`` % busy or ``limit`` s pass;
    returns (seconds waited, last busy %)."""
    from bench.server import machine_busy_seconds

    started = time.monotonic()
    pct = 100.0
    while True:
        busy0, total0 = machine_busy_seconds()
        time.sleep(0.5)
        busy1, total1 = machine_busy_seconds()
        pct = 100 * (busy1 - busy0) / max(total1 - total0, 1e-9)
        waited = time.monotonic() - started
        if pct < threshold or waited >= limit:
            return waited, pct


_ACCESS = re.compile(r"loopgate\.access (\S+) (\S+) (\d{3}) ")
_PROBLEMS = (
    "Traceback",
    "database is locked",
    "deadlock",
    "could not serialize",
    "QueuePool limit",
    "TimeoutError",
    "OperationalError",
    "IntegrityError",
    " ERROR ",
    "CRITICAL",
)


def scan_log(path: Path) -> list[str]:
    """Server log: responses by status class from the access log, and error signatures."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    statuses: Counter[str] = Counter()
    for method, route, status in _ACCESS.findall(text):
        if status[0] in "45":
            statuses[f"{status} {method} {route}"] += 1
    problems = Counter(p.strip() for p in _PROBLEMS for _ in range(text.count(p)))
    out = [f"{count}× {what}" for what, count in statuses.most_common(8)]
    out += [f"{count}× '{what}' in the log" for what, count in problems.most_common()]
    return out


def one_line(m: Measurement) -> str:
    lat = m.latency
    extra = f", {m.errors} errors" if m.errors else ""
    return (
        f"{m.app:8} {m.workload:14} c={m.connections:<3} {m.ok_rate:8.1f} ok/s  "
        f"p50 {lat.get('p50', 0):6.1f} ms  p99 {lat.get('p99', 0):7.1f} ms  "
        f"server {m.server_cpu_ms_per_request():5.2f} ms CPU/req  "
        f"loadgen {m.result['loadgen_cpu_pct']:4.1f} % CPU  other procs {m.other_cpu_pct:3.0f} %"
        f"{extra}"
    )


def _find(
    bench: "Bench", backend: str, app: str, workload: str, conns: int | None = None
) -> Measurement | None:
    for m in bench.measurements:
        if (m.backend, m.app, m.workload) == (backend, app, workload) and (
            conns is None or m.connections == conns
        ):
            return m
    return None


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    line = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), line, *(fmt(r) for r in rows)])


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _cpu_ms(m: Measurement) -> float:
    """Server + PostgreSQL CPU per request: less sensitive to a busy machine than rates."""
    return m.server_cpu_ms_per_request() + m.postgres_cpu_ms_per_request()


def summary_rows(bench: "Bench", backend: str) -> list[list[str]]:
    rows = []
    for workload, title in TITLES.items():
        lg = _find(bench, backend, "loopgate", workload)
        base = _find(bench, backend, "baseline", workload)
        if lg is None:
            continue
        _, threshold, label = TARGETS[(workload, backend)]
        ok = lg.ok_rate >= threshold
        ratio = f"{lg.ok_rate / base.ok_rate:.2f}" if base and base.ok_rate else "-"
        errors = f"{lg.errors}/{base.errors if base else '-'}"
        cpu = f"{_cpu_ms(lg):.1f}/{_cpu_ms(base):.1f}" if base else f"{_cpu_ms(lg):.1f}/-"
        rows.append(
            [
                title,
                backend,
                f"{lg.ok_rate:,.0f}",
                f"{base.ok_rate:,.0f}" if base else "-",
                ratio,
                label,
                _met(ok and lg.errors == 0),
                errors,
                cpu,
            ]
        )
    for conns in (1, bench.args.connections):
        m = _find(bench, backend, "loopgate", "task-search", conns)
        if m is None:
            continue
        lat = m.latency
        rows.append(
            [
                f"(d) Task inbox search p50/p99 ms, c={conns}",
                backend,
                f"{lat.get('p50', 0):.1f} / {lat.get('p99', 0):.1f}",
                "-",
                "-",
                f"p99 ≤ {SEARCH_P99_MS:.0f}",
                _met(lat.get("p99", 1e9) <= SEARCH_P99_MS and m.errors == 0),
                f"{m.errors}/-",
                f"{_cpu_ms(m):.1f}/-",
            ]
        )
    lg_rss = bench.rss.get((backend, "loopgate"))
    base_rss = bench.rss.get((backend, "baseline"))
    if lg_rss:
        peak = max(lg_rss.values()) / 1024
        base_peak = max(base_rss.values()) / 1024 if base_rss else None
        rows.append(
            [
                f"(e) peak RSS MB per process (sum of {len(lg_rss)})",
                backend,
                f"{peak:.0f} ({sum(lg_rss.values()) / 1024:.0f})",
                f"{base_peak:.0f}" if base_peak else "-",
                f"{peak / base_peak:.2f}" if base_peak else "-",
                f"≤ {RSS_MB:.0f}",
                _met(peak <= RSS_MB),
                "-",
                "-",
            ]
        )
    return rows


def detail_rows(ms: list[Measurement]) -> list[list[str]]:
    rows = []
    for m in ms:
        lat = m.latency
        pg = f"{m.postgres_cpu_ms_per_request():.2f}" if m.backend == "postgres" else "-"
        rows.append(
            [
                m.backend,
                m.app,
                m.workload,
                f"{m.layout}×{m.workers}",
                str(m.connections),
                f"{m.ok_rate:,.1f}",
                f"{lat.get('p50', 0):.1f}",
                f"{lat.get('p99', 0):.1f}",
                f"{lat.get('max', 0):.0f}",
                str(m.errors),
                f"{m.server_cpu_ms_per_request():.2f}",
                pg,
                m.worker_split(),
                f"{m.result['loadgen_cpu_pct']:.1f}",
                f"{1e6 * m.result['loadgen_cpu_s'] / max(m.requests, 1):.0f}",
                f"{m.machine_busy_pct:.0f}",
                f"{m.other_cpu_pct:.0f}",
            ]
        )
    return rows


SUMMARY_HEADERS = [
    "workload",
    "backend",
    "Loopgate",
    "baseline",
    "ratio",
    "target",
    "met",
    "errors L/B",
    "CPU ms/req L/B",
]
DETAIL_HEADERS = [
    "backend",
    "app",
    "workload",
    "layout",
    "conns",
    "ok/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "errors",
    "srv CPU ms/req",
    "PG CPU ms/req",
    "worker CPU split",
    "loadgen CPU %",
    "loadgen µs/req",
    "machine busy %",
    "other procs %",
]


def print_report(bench: "Bench", info: dict[str, Any], *, elapsed: float) -> None:
    args = bench.args
    backends = sorted({m.backend for m in bench.measurements}, key=["sqlite", "postgres"].index)
    print("\n" + "=" * 100)
    print(
        f"Loopgate benchmark — {args.duration:g} s per run after {args.warmup:g} s warm-up, "
        f"{args.connections} keep-alive connections, server: {args.workers} process(es), "
        f"layout {args.layout}" + (" [QUICK]" if args.quick else "")
    )
    print("=" * 100)
    rows = [r for b in backends for r in summary_rows(bench, b)]
    print(_table(SUMMARY_HEADERS, rows, {2, 3, 4, 8}))
    print(
        "ratio = Loopgate/baseline (baseline: same routes, tables, engine and uvicorn setup; "
        "orjson parse + inserts only). 'met' also needs zero errors. CPU ms/req = server + "
        "PostgreSQL CPU per request."
    )
    for backend in backends:
        s = bench.search.get(backend)
        if s:
            print(
                f"(d) {backend}: {args.tasks:,} Tasks, lastUpdated spread evenly over the "
                f"past 100 days; gt{s['since']} keeps the newest 1.5 %; owner+status+date "
                f"match {s['matches']} (server total {s['total']}), page of {s['page']} "
                "returned (default _count)."
            )
    if bench.notification_runs:
        print_notifications(bench.notification_runs)
    print("\nRuns:")
    all_runs = bench.measurements + bench.layout_checks
    print(_table(DETAIL_HEADERS, detail_rows(bench.measurements), set(range(4, 17))))
    if bench.layout_checks:
        print("\nWorker layout check (referrals, same database, shorter runs):")
        print(_table(DETAIL_HEADERS, detail_rows(bench.layout_checks), set(range(4, 17))))
    if bench.rows_per_op:
        print(
            "\nNet rows added per operation (Loopgate vs baseline; an update replaces the "
            "resource's index rows, so its net can be negative):"
        )
        tables = [
            "resource_version",
            "resource",
            "search_token",
            "search_reference",
            "search_date",
            "search_string",
        ]
        table_rows = []
        for (backend, app, op), counts in sorted(bench.rows_per_op.items()):
            table_rows.append([backend, op, app, *(f"{counts.get(t, 0):.1f}" for t in tables)])
        print(_table(["backend", "operation", "app", *tables], table_rows, set(range(3, 9))))
    errors = [m for m in all_runs if m.errors]
    if errors:
        print("\nErrors (non-expected statuses) — runs with errors are suspect:")
        for m in errors:
            bad = {
                k: v for k, v in m.result["statuses"].items() if not k.endswith((" 200", " 201"))
            }
            print(f"  {m.backend} {m.app} {m.workload}: {m.errors} errors {bad}")
            for sample in m.result["error_samples"][:3]:
                print(f"    e.g. {sample}")
    noisy = [m for m in all_runs if m.other_cpu_pct > OTHER_CPU_WARN]
    if noisy:
        worst = max(m.other_cpu_pct for m in noisy)
        print(
            f"\nWARNING: other processes used up to {worst:.0f} % of the machine during "
            f"{len(noisy)} of {len(all_runs)} runs ('other procs %'); those numbers are "
            "depressed by CPU contention and are not comparable. Rerun on a quiet machine."
        )
    findings = {k: v for k, v in bench.log_findings.items() if v}
    if findings:
        print("\nServer logs (4xx/5xx from the access log, error signatures):")
        for key, lines in findings.items():
            print(f"  {key}: " + "; ".join(lines))
    for m in all_runs:
        if m.profile:
            print(
                f"\nProfile: {m.backend} {m.app} {m.workload} (py-spy, inclusive share of "
                "server samples):"
            )
            for line in m.profile:
                print(f"  {line}")
    for m in all_runs:
        for note in m.notes:
            print(f"note: {m.backend} {m.app} {m.workload}: {note}")
    for note in bench.notes:
        print(f"note: {note}")
    print("\nMachine:")
    for key, value in info.items():
        print(f"  {key}: {value}")
    print(f"\nTotal bench time {elapsed:.0f} s.")


NOTIFICATION_HEADERS = ["subscriptions (rest-hook, id-only)", "backend", "measured", "target"]
NOTIFICATION_HEADERS += ["met"]


def notification_rows(run: "NotificationRun") -> list[list[str]]:
    from bench.notifications import LATENCY_P99_MS, NOTIFICATIONS_PER_S

    result, plan, lat = run.result, run.plan, run.latency
    burst, checks, sub = run.burst, run.checks, result["subscribe"]
    errors = sum(result["errors"].values())
    b = run.backend
    latency_ok = lat.get("p99", 1e9) <= LATENCY_P99_MS and result["latency"]["complete"]
    return [
        [
            f"(f) CBO action → notification received, p50 / p99 / max ms "
            f"(n={result['latency']['received']} at {plan.latency_rate:g}/s, 1 subscription)",
            b,
            f"{lat.get('p50', 0):.1f} / {lat.get('p99', 0):.1f} / {lat.get('max', 0):.0f}",
            f"p99 ≤ {LATENCY_P99_MS:.0f}",
            _met(latency_ok and errors == 0),
        ],
        [
            f"(g) notifications delivered /s, {sub['created']:,} active subscriptions, "
            f"{plan.fanout} match each write ({burst['writes']['ok']} writes → "
            f"{burst['expected']:,} notifications)",
            b,
            f"{burst['rate']:,.0f} ({burst['arrivals']:,} in {burst['span_s']:.1f} s)",
            f"≥ {NOTIFICATIONS_PER_S:.0f}",
            _met(burst["rate"] >= NOTIFICATIONS_PER_S and burst["complete"]),
        ],
        [
            "(h) events lost / duplicated at once / duplicated later (2 processes)",
            b,
            f"{checks['lost']} / {checks['duplicated_at_once']} / {checks['duplicated_later']}"
            f" of {checks['events_expected']:,}",
            "0 / 0 / any",
            _met(checks["lost"] == 0 and checks["duplicated_at_once"] == 0),
        ],
        [
            f"    Task writes/s: no live subscription → {sub['created']:,} live "
            f"({plan.connections} connections)",
            b,
            f"{result['plain_writes']['rate']:,.0f} → {burst['writes']['rate']:,.0f}",
            "-",
            "-",
        ],
        [
            f"    {sub['created']:,} Subscriptions created / all handshakes delivered, s",
            b,
            f"{sub['created_s']:.1f} / {sub['handshakes_s']:.1f}",
            "-",
            "-",
        ],
        [
            "    of which after the last write: notifications, s, /s (delivery alone)",
            b,
            f"{burst['after_writes']:,}, {burst['drain_s']:.1f} s, {burst['drain_rate']:,.0f}/s",
            "-",
            "-",
        ],
        [
            "    server+PG CPU ms per notification during the burst",
            b,
            f"{run.cpu_ms_per_notification():.2f}",
            "-",
            "-",
        ],
    ]


def print_notifications(runs: "list[NotificationRun]") -> None:
    from bench.notifications import OUTBOX_ENV

    rows = [row for run in runs for row in notification_rows(run)]
    print()
    print(_table(NOTIFICATION_HEADERS, rows, {2}))
    plan = runs[0].plan
    settings = ", ".join(f"{k.removeprefix('LOOPGATE_')}={v}" for k, v in OUTBOX_ENV.items())
    print(
        f"Subscriptions: the CBO PUTs Task requested → accepted; the receiver (same process as "
        f"the CBO client, answers 200 after {plan.hold_ms:g} ms) records arrivals. Outbox: "
        f"{settings}. Of {plan.subscriptions:,} subscriptions {plan.fanout} filter "
        "Task?requester=<the Tasks' requester> (match every write), the rest "
        "Task?owner=<an organization that owns nothing> (evaluated, never match). "
        "'duplicated at once' = a copy arriving while an earlier copy of the same (subscription, "
        "event number) was still being received or answered."
    )
    for run in runs:
        checks = run.checks
        extra = []
        if checks["unexpected"] or checks["out_of_order"] or checks["unparsable"]:
            extra.append(
                f"unexpected {checks['unexpected']}, out of order {checks['out_of_order']}, "
                f"unparsable {checks['unparsable']}"
            )
        for name, phase in run.phases.items():
            extra.append(
                f"{name}: server CPU {phase.server_cpu_s:.1f} s, PG {phase.postgres_cpu_s:.1f} s, "
                f"machine {phase.machine_busy_pct:.0f} % busy"
            )
        print(f"  {run.backend}: " + "; ".join(extra))
        for note in run.notes:
            print(f"  note: {run.backend}: {note}")
        if run.profile:
            print(f"  Profile: {run.backend} burst (py-spy, inclusive share of server samples):")
            for line in run.profile:
                print(f"    {line}")
