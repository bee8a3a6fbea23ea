"""Optional server-side sampling profiles (``--profile DIR``) with py-spy, and their summary.

py-spy is not a project dependency: install it anywhere (``pip install --target /tmp/pyspy
py-spy``) and point ``--py-spy`` (or ``PATH``) at its binary. During the measured window of the
referral and status-update runs, one ``py-spy record --format raw`` per server process writes
collapsed stacks to DIR; the summary lists the frames with the largest inclusive share.
"""

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
_SITE = re.compile(r" \(/.*?/site-packages/")


def find_py_spy(explicit: str | None) -> str | None:
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("py-spy")


def start(
    py_spy: str, pids: list[int], seconds: float, out_dir: Path, label: str
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    running = []
    for pid in pids:
        out = out_dir / f"{label}-{pid}.txt"
        command = [
            py_spy,
            "record",
            "--nonblocking",
            "-r",
            "250",
            "-d",
            str(max(1, int(seconds))),
            "--format",
            "raw",
            "-o",
            str(out),
            "-p",
            str(pid),
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running.append((process, out))
    return running


def finish(running: list[tuple[subprocess.Popen[bytes], Path]]) -> list[Path]:
    files = []
    for process, out in running:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if out.exists():
            files.append(out)
    return files


_PROJECT = ("gateway/", "conformance/", "fhir_mappings/", "adapters/", "smart_auth/")
_SKIP = ("gateway/request_log.py", "gateway/fhir_api/routes.py")
_LIBRARIES = {
    "sqlalchemy": "SQLAlchemy (statement building, compile cache, result rows)",
    "psycopg": "psycopg",
    "pydantic": "pydantic / fhir.resources validation",
    "fhir_core": "pydantic / fhir.resources validation",
    "fhir": "pydantic / fhir.resources validation",
    "starlette": "HTTP framework (uvicorn, starlette, fastapi)",
    "fastapi": "HTTP framework (uvicorn, starlette, fastapi)",
    "uvicorn": "HTTP framework (uvicorn, starlette, fastapi)",
    "logging": "logging",
}


def _frame(text: str) -> str:
    """'func (path:line)' → 'func (short/path.py)'."""
    text = _LINE.sub(")", text)
    text = _SITE.sub(" (", text)
    return re.sub(
        r" \(/\S*?/(gateway|conformance|bench|fhir_mappings|adapters|smart_auth)/", r" (\1/", text
    )


def _file(frame: str) -> str:
    return frame[frame.rfind("(") + 1 : -1]


def _library(frame: str) -> str:
    path = _file(frame)
    if ("default.py" in path and frame.startswith("DefaultDialect.do_")) or frame.startswith(
        ("CursorFetchStrategy.fetch", "CursorResult._fetch", "BufferedRowCursorFetchStrategy")
    ):
        return "database driver + engine (execute, fetch, commit; SQLite runs in here)"
    if path.startswith(_PROJECT):
        return "Loopgate's own Python code"
    top = path.split("/", 1)[0]
    return _LIBRARIES.get(top, "other (stdlib, orjson, asyncio, …)")


def summarize(files: list[Path], top: int = 22) -> list[str]:
    """Loopgate functions by inclusive share of the samples (each counted once per stack),
    then the share of the samples whose innermost frame is in each library."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [_frame(f) for f in stack.split(";")]
            for frame in set(frames):
                if _file(frame).startswith(_PROJECT) and not _file(frame).startswith(_SKIP):
                    inclusive[frame] += n
            leaf[_library(frames[-1])] += n
    if not total:
        return ["no samples"]
    lines = [f"{100 * n / total:5.1f} %  {frame}" for frame, n in inclusive.most_common(top)]
    lines.append("innermost frame by library:")
    lines += [f"{100 * n / total:5.1f} %  {what}" for what, n in leaf.most_common()]
    return lines
