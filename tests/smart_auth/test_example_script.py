"""examples/backend_services.py, run as an operator would, against a live server."""

import importlib.util
import json
import stat
from pathlib import Path
from types import ModuleType

from tests.smart_auth.conftest import HOSPITAL

EXAMPLE = Path(__file__).parents[2] / "examples" / "backend_services.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("backend_services_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example__make_key_register_get_token_and_send_a_referral(live, tmp_path, capsys) -> None:
    example = _example()
    key_file = tmp_path / "hospital-key.json"
    assert example.main(["--make-key", str(key_file)]) == 0
    jwks = json.loads(capsys.readouterr().out)
    assert "d" not in jwks["keys"][0]
    assert jwks["keys"][0]["alg"] == "RS384"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    live.smart.provision(  # the operator registers the printed JWKS
        users=[],
        clients=[
            {
                "client_id": "demo-hospital",
                "type": "backend",
                "jwks": jwks,
                "scope": "system/Patient.cruds system/ServiceRequest.cruds system/Task.cruds",
                "organization": HOSPITAL,
            }
        ],
    )
    arguments = [
        "--key",
        str(key_file),
        "--client-id",
        "demo-hospital",
        "--token-url",
        f"{live.base}/auth/token",
        "--scope",
        "system/Patient.c system/ServiceRequest.c system/Task.c",
    ]
    assert example.main([*arguments, "--create-referral", f"{live.base}/fhir"]) == 0
    output = capsys.readouterr()
    assert "Got a token" in output.err
    assert output.out.count("201 Created") == 3
    # a second run signs a fresh assertion (a new jti), so it is not refused as a replay
    assert example.main(arguments) == 0
