"""Child-process entry that serves an ASGI factory with uvicorn, the way ``loopgate serve`` does.

``python -m bench.serve --app MODULE:FACTORY --port P --reuseport`` binds its own listening
socket with SO_REUSEPORT, so N such processes on one port get connections spread by the kernel
(per connection 4-tuple hash) instead of racing on one shared accept queue, which is what makes
``uvicorn --workers N`` leave a worker idle under keep-alive load (reference/perf.md §2.2).
``--workers N`` without ``--reuseport`` runs ``uvicorn.run(..., workers=N)`` exactly like
``gateway.cli.serve``. Either way the uvicorn options are those of ``gateway.cli.serve``, and
logging is configured as the CLI configures it. A ready file is written once the app's startup
(lifespan, including the FHIR schema warm-up) has finished.
"""

import argparse
import os
import socket
from pathlib import Path
from typing import Any

import uvicorn

from gateway.logs import configure_logging
from gateway.settings import get_settings


def uvicorn_options() -> dict[str, Any]:
    """The options ``gateway.cli.serve`` passes to uvicorn (keep in step with it)."""
    return {"access_log": False, "log_level": "warning", "proxy_headers": False}


class _ReadyServer(uvicorn.Server):
    ready_file: Path | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.ready_file is not None:
            self.ready_file.write_text(str(os.getpid()))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--app", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--reuseport", action="store_true")
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    configure_logging(get_settings().log_level)
    if not args.reuseport:
        uvicorn.run(
            args.app,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            **uvicorn_options(),
        )
        return 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    config = uvicorn.Config(args.app, factory=True, **uvicorn_options())
    server = _ReadyServer(config)
    server.ready_file = args.ready_file
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
