"""What the database holds: never a raw token, code, launch handle, session id or secret."""

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlmodel import SQLModel

from smart_auth.tables import jti_table, launch_table, session_table, token_table
from tests.conftest import BASE_URL
from tests.smart_auth.conftest import APP_SECRET, PASSWORD, build_app
from tests.smart_auth.flows import (
    assertion,
    authorize_params,
    backend_token,
    consent,
    pkce,
    query_of,
    redeem,
    signed_in,
)


def _everything_stored(engine) -> str:
    text = []
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            if table.name.startswith("smart_"):
                text += [repr(tuple(row)) for row in connection.execute(select(table))]
    return "\n".join(text)


def test_rows_never_contain_raw_secrets(client, engine, keys) -> None:
    signed_in(client)
    session = client.cookies.get("loopgate_session")
    launched = client.get("/app/launch/patient-app", params={"patient": "Patient/p1"})
    launch = query_of(launched.headers["location"])["launch"]
    verifier, challenge = pkce()
    params = authorize_params(
        scope="launch openid fhirUser offline_access patient/Task.rs",
        launch=launch,
        code_challenge=challenge,
    )
    code = query_of(
        consent(client, client.get("/auth/authorize", params=params)).headers["location"]
    )["code"]
    body = redeem(client, code, verifier).json()
    backend = backend_token(client, assertion(keys["hospital"], "hospital-ehr")).json()
    stored = _everything_stored(engine)
    secrets = {
        "session": session,
        "launch": launch,
        "code": code,
        "verifier": verifier,
        "access": body["access_token"],
        "refresh": body["refresh_token"],
        "backend": backend["access_token"],
        "password": PASSWORD,
        "client secret": APP_SECRET,
    }
    for name, value in secrets.items():
        assert value, name
        assert value not in stored, name
    assert "smart_token" in {t.name for t in SQLModel.metadata.sorted_tables}


def test_expired_rows_are_purged(client, engine, keys, jwks_server, patients) -> None:
    signed_in(client)
    client.get("/app/launch/patient-app", params={"patient": "Patient/p1"})
    assert backend_token(client, assertion(keys["hospital"], "hospital-ehr")).status_code == 200
    with engine.begin() as connection:
        for table in (jti_table, launch_table, session_table, token_table):
            connection.execute(update(table).values(expires_at=0))
    other_app, _ = build_app(engine, jwks_server, patients)  # a fresh process purges at once
    with TestClient(other_app, base_url=BASE_URL) as other:
        assert backend_token(other, assertion(keys["hospital"], "hospital-ehr")).status_code == 200
    with engine.connect() as connection:
        for table in (launch_table, session_table):
            assert connection.execute(select(func.count()).select_from(table)).scalar() == 0
        # only the new token and its jti remain
        assert connection.execute(select(func.count()).select_from(token_table)).scalar() == 1
        assert connection.execute(select(func.count()).select_from(jti_table)).scalar() == 1
