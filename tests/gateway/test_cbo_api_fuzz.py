"""The ``/api/v1`` OpenAPI document, fuzzed with schemathesis against a running Loopgate: no
5xx, and every answer is one the document declares (status, media type, headers, body schema).

Why a running server: the app runs as in production, a real uvicorn server (lifespan on) on a
free loopback port, in a thread of this process so the test can seed it through its engine on
SQLite or PostgreSQL and its tracebacks land in this test's log. schemathesis' ASGI transport
would skip the layer where odd input lands first (uvicorn's parsing and percent-decoding of
paths, queries and headers, ``Content-Length``, the routing of decoded paths into the mount),
and that layer is where several of the findings were. The outbox worker is off, so webhook URLs
the fuzzer sets are never called.

schemathesis runs as its CLI (``python -m schemathesis.cli``) with ``cbo_api_fuzz.toml``: the
same command works by hand against any running Loopgate, and its report (with a curl line per
failure) is this test's failure message. The run is deterministic (fixed seed, derandomized, no
example database or cache) and bounded (``max-examples`` per operation). Before it, the hospital
refers the client six times over FHIR and the food bank moves the referrals into six states
through the API, with a webhook so deliveries exist; ``cbo_api_fuzz_hooks.py`` mixes those ids
into the generated path parameters.
"""

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.settings import Settings
from tests.adapters.webhook_receiver import free_port
from tests.builders import CBO, HOSPITAL, OTHER_CBO, service_request, task
from tests.conftest import store_signing_key
from tests.gateway.live_server import serving
from tests.partners import API, CBO_KEY, OTHER_CBO_KEY, key_headers, provision_partners
from tests.tokens import mint

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
REPO = HERE.parents[1]
SPARE_KEY = "lgk_eastside-food-bank-spare-key-0123456789abcdef"
"""A second key of the food bank's, for the fuzzer to revoke (never the one it uses)."""
WEBHOOK_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
STATES = {
    "task-requested": [],
    "task-accepted": ["accept"],
    "task-in-progress": ["accept", "start"],
    "task-on-hold": ["accept", "start", "hold"],
    "task-completed": ["accept", "start", "complete"],
    "task-rejected": ["decline"],
}
BODIES = {
    "hold": {"reason": "waitlisted", "text": "Next slot Monday"},
    "complete": {"outcome": "service-provided", "performed": "2025-03-14"},
    "decline": {"reason": "out-of-service-area"},
}
RUN_TIMEOUT_S = 600


def seed(base: str, app: FastAPI, engine: Engine) -> dict[str, Any]:
    """Partners and six referrals in six states, through the running server (the partner
    provisioning goes through the app's FHIR service, as ``loopgate provision`` does)."""
    provision_partners(
        TestClient(app),
        {
            "organization": CBO,
            "api_keys": [CBO_KEY, SPARE_KEY],
            # nothing listens there, and the outbox worker is off: deliveries stay pending
            "webhook": {"url": f"http://127.0.0.1:{free_port()}/hooks", "secret": WEBHOOK_SECRET},
        },
        {"organization": OTHER_CBO, "api_keys": [OTHER_CBO_KEY]},
    )
    hospital = {"Authorization": f"Bearer {mint(engine, organization=HOSPITAL)}"}
    with httpx.Client(base_url=base, timeout=30) as http:
        made = http.put(
            "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=hospital
        )
        assert made.status_code in (200, 201), made.text
        for task_id, actions in STATES.items():
            made = http.put(f"/fhir/Task/{task_id}", json=task(task_id), headers=hospital)
            assert made.status_code == 201, made.text
            for action in actions:
                done = http.post(
                    f"{API}/referrals/{task_id}/{action}",
                    json=BODIES.get(action),
                    headers=key_headers(),
                )
                assert done.status_code == 200, done.text
        said = http.post(
            f"{API}/referrals/task-in-progress/messages",
            json={"text": "Client enrolled."},
            headers=key_headers(),
        )
        assert said.status_code == 201, said.text
        deliveries = http.get(f"{API}/webhook/deliveries", headers=key_headers()).json()["items"]
        keys = http.get(f"{API}/api-keys", headers=key_headers()).json()["items"]
    assert deliveries, "the referral events should have queued webhook deliveries"

    def key_id(key: str) -> str:
        return next(k["id"] for k in keys if key.startswith(k["prefix"]))

    return {
        "referrals": list(STATES),
        "deliveries": [d["id"] for d in deliveries[:5]],
        "spare_key_id": key_id(SPARE_KEY),
        "own_key_id": key_id(CBO_KEY),
    }


def test_api_v1__fuzzed_answers_are_never_5xx_and_always_as_documented(
    settings: Settings, engine: Engine, signing_key: dict[str, Any]
) -> None:
    store_signing_key(engine, signing_key)
    app = create_app(settings.model_copy(update={"outbox_worker": False}), engine=engine)
    with serving(app, name="fuzzed-loopgate") as base:
        seeded = seed(base, app, engine)
        started = time.monotonic()
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(HERE / "cbo_api_fuzz.toml"),
                "run",
                "--no-color",
                f"{base}{API}/openapi.json",
            ],
            cwd=REPO,
            env={
                **os.environ,
                "LOOPGATE_FUZZ_API_KEY": CBO_KEY,
                "LOOPGATE_FUZZ_HOOKS": str(HERE / "cbo_api_fuzz_hooks.py"),
                "LOOPGATE_FUZZ_IDS": json.dumps(seeded),
            },
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout}\n{run.stderr}"
    print(f"schemathesis ran in {elapsed:.0f} s:\n{run.stdout[-1500:]}")
