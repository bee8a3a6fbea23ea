"""Run an app on a real uvicorn server, in a thread of the test process, on a free port.

Tests that need what only a real server does (uvicorn's parsing, endless streaming responses
read as they come) use it; the test can still seed the database through its own engine.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.adapters.webhook_receiver import free_port


@contextmanager
def serving(app: FastAPI, *, name: str = "loopgate-under-test") -> Iterator[str]:
    """``app`` on a real uvicorn server on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
