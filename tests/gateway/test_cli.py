"""``loopgate serve`` and ``loopgate demo`` as a user runs them: real processes, real curl."""

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import Engine

from tests.tokens import mint


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    env: dict[str, str]

    _stderr: str | None = None

    def log(self) -> str:
        """Stop the server and return everything it logged."""
        if self._stderr is None:
            self.process.terminate()
            _, self._stderr = self.process.communicate(timeout=20)
        return self._stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(database_url: str, **env: str) -> Server:
    port = _free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOOPGATE_")},
        "LOOPGATE_DATABASE_URL": database_url,
        "LOOPGATE_PORT": str(port),
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, stderr = process.communicate()
            raise AssertionError(f"loopgate serve exited: {stderr}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Server(url, process, environment)
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    process.communicate()
    raise AssertionError("loopgate serve did not come up")


@pytest.fixture
def server(database_url: str, engine: Engine, tmp_path: Path) -> Iterator[Server]:
    started = _start(database_url, LOOPGATE_DEMO_DIR=str(tmp_path / "demo"))
    yield started
    started.log()


def test_serve__logs_where_it_listens_and_which_database(server: Server) -> None:
    metadata = httpx.get(f"{server.url}/fhir/metadata")
    assert metadata.status_code == 200
    log = server.log()
    lines = [line for line in log.splitlines() if "Loopgate listening on" in line]
    assert len(lines) == 1
    assert server.url in lines[0]
    label = server.env["LOOPGATE_DATABASE_URL"].split("@")[-1]
    assert label.split("/")[-1] in lines[0]


def test_serve__every_fhir_call_but_metadata_needs_a_token(server: Server) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        {"X-Loopgate-Organization": "Organization/mercy-hospital"},
    ):
        response = httpx.get(f"{server.url}/fhir/Patient", headers=headers)
        assert response.status_code == 401
        assert response.json()["resourceType"] == "OperationOutcome"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{server.url}/fhir/metadata").status_code == 200


def test_serve__access_log_never_contains_query_strings(server: Server, engine: Engine) -> None:
    token = mint(engine, organization="Organization/mercy-hospital", audience=f"{server.url}/fhir")
    httpx.get(
        f"{server.url}/fhir/Patient?name=Rivera", headers={"Authorization": f"Bearer {token}"}
    )
    log = server.log()
    assert "Rivera" not in log
    assert "GET /fhir/{resource_type} 200" in log


def test_demo__every_printed_command_does_what_it_says(server: Server) -> None:
    """The demo's commands get real tokens with the example script and call the real server."""
    printed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    steps = re.split(r"^# (?=\d+\. )", printed, flags=re.MULTILINE)[1:]
    assert len(steps) >= 10
    assert "Authorization: Bearer $(" in steps[0]
    for step in steps:
        header, command = step.split("\n", 1)
        expected = re.search(r"\[expect (\d{3})\]", header)
        assert expected, header
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        status = result.stdout.strip().splitlines()[-1]
        assert status == expected.group(1), f"{header}\n{result.stdout[-800:]}"


def _provision(env: dict[str, str], path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "provision", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _provisioning_file(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "network.json"
    path.write_bytes(orjson.dumps(document))
    return path


NETWORK = {
    "resources": [
        {"resourceType": "Organization", "id": "mercy-hospital", "name": "Mercy Hospital"},
        {"resourceType": "Organization", "id": "eastside-food-bank", "name": "Eastside"},
        {
            "resourceType": "Endpoint",
            "id": "mercy-fhir",
            "status": "active",
            "connectionType": {"code": "hl7-fhir-rest"},
            "payloadType": [{"text": "FHIR"}],
            "address": "https://ehr.mercy.example/fhir",
            "managingOrganization": {"reference": "Organization/mercy-hospital"},
        },
    ],
    "users": [
        {
            "username": "dr.okafor",
            "password": "a long password",
            "roles": ["clinician"],
            "fhir_user": "Practitioner/dr-okafor",
            "organization": "Organization/mercy-hospital",
        }
    ],
    "clients": [
        {
            "client_id": "mercy-ehr",
            "type": "backend",
            "scope": "system/*.rs",
            "jwks_uri": "https://ehr.mercy.example/jwks.json",
            "organization": "Organization/mercy-hospital",
        }
    ],
}


def test_provision__applies_a_file_idempotently(
    server: Server, tmp_path: Path, engine: Engine
) -> None:
    path = _provisioning_file(tmp_path, NETWORK)
    first = _provision(server.env, path)
    assert first.returncode == 0, first.stderr
    assert "3 new resources" in first.stderr
    again = _provision(server.env, path)
    assert again.returncode == 0, again.stderr
    assert "0 new resources, 3 already there" in again.stderr
    token = mint(engine, organization="Organization/mercy-hospital", audience=f"{server.url}/fhir")
    endpoint = httpx.get(
        f"{server.url}/fhir/Endpoint/mercy-fhir", headers={"Authorization": f"Bearer {token}"}
    )
    assert endpoint.status_code == 200
    assert endpoint.json()["meta"]["versionId"] == "1"  # re-applying changed nothing


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"resources": [{"resourceType": "Organization", "id": "x", "name": 5}]},
            "resources[0].name",
        ),
        (
            {"clients": [{**NETWORK["clients"][0], "jwks_uri": "http://ehr.example/jwks.json"}]},
            "clients[0].jwks_uri",
        ),
        ({"users": [{**NETWORK["users"][0], "roles": ["overlord"]}]}, "users[0].roles"),
        ({"subscriptions": []}, "subscriptions"),
        (
            {"partners": [{"organization": "Organization/mercy-hospital", "api_keys": ["abc"]}]},
            "partners[0].api_keys[0]",
        ),
        (
            {
                "partners": [
                    {
                        "organization": "Organization/mercy-hospital",
                        "webhook": {"url": "http://cbo.example/hooks", "secret": "whsec_x"},
                    }
                ]
            },
            "partners[0].webhook.url",
        ),
        ({"partners": [{"organization": "Organization/nowhere"}]}, "partners[0].organization"),
        ({"resources": [{"resourceType": "Organization", "name": "no id"}]}, "resources[0].id"),
    ],
)
def test_provision__a_bad_file_is_refused_naming_the_field(
    server: Server, tmp_path: Path, change: dict, named: str
) -> None:
    result = _provision(server.env, _provisioning_file(tmp_path, {**NETWORK, **change}))
    assert result.returncode == 2
    assert named in result.stderr


def test_serve__applies_the_provisioning_file_at_start(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = _provisioning_file(tmp_path, NETWORK)
    started = _start(database_url, LOOPGATE_PROVISION_FILE=str(path))
    try:
        token = mint(
            engine, organization="Organization/mercy-hospital", audience=f"{started.url}/fhir"
        )
        response = httpx.get(
            f"{started.url}/fhir/Organization/eastside-food-bank",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
    finally:
        log = started.log()
    assert "Provisioned" in log


def test_serve__several_workers_still_write_the_access_log(
    database_url: str, engine: Engine
) -> None:
    started = _start(database_url, LOOPGATE_WORKERS="2")
    try:
        for _ in range(4):
            httpx.get(f"{started.url}/fhir/metadata")
    finally:
        log = started.log()
    assert log.count("GET /fhir/metadata 200") == 4


def _loopgate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_api_key__create_prints_a_working_key_once_list_and_revoke(
    server: Server, tmp_path: Path
) -> None:
    assert _provision(server.env, _provisioning_file(tmp_path, NETWORK)).returncode == 0
    created = _loopgate(server.env, "api-key", "create", "eastside-food-bank", "--label", "CMS")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("lgk_")
    assert len(created.stdout.splitlines()) == 1  # only the key, so $(...) captures it
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{server.url}/api/v1/referrals", headers=headers).status_code == 200

    listed = _loopgate(server.env, "api-key", "list", "Organization/eastside-food-bank")
    [line] = listed.stdout.splitlines()
    assert key not in line
    assert "active" in line
    assert "CMS" in line
    assert "never used" not in line
    key_id = line.split()[0]
    revoked = _loopgate(server.env, "api-key", "revoke", "Organization/eastside-food-bank", key_id)
    assert revoked.returncode == 0
    assert httpx.get(f"{server.url}/api/v1/referrals", headers=headers).status_code == 401

    unknown = _loopgate(server.env, "api-key", "create", "Organization/nowhere")
    assert unknown.returncode == 2
    assert "not stored" in unknown.stderr
