"""The bare baseline: same routes, same tables, same engine settings, none of Loopgate's layers.

It parses the JSON with orjson and writes the same kinds of rows Loopgate writes (a version row
with the body, the current-version row, search-index rows from a naive top-level scan, and a
Provenance row set for each Task write) in one transaction per request, then answers with a
minimal JSON body. No FHIR validation, no profile or workflow rules, no reference checks, no
conditional-create lookup, no content negotiation, no error rendering. Served by the same
uvicorn setup as Loopgate, so Loopgate/baseline is the price of our own layers. Not product code.
"""

import time
import uuid
from typing import Any

import orjson
from fastapi import FastAPI, Request
from sqlalchemy import Connection, delete, insert, select, text, update
from starlette.responses import Response

from gateway.settings import get_settings
from gateway.store.engine import make_engine, read_transaction, write_transaction
from gateway.store.tables import (
    INDEX_TABLES,
    date_table,
    reference_table,
    resource_table,
    string_table,
    token_table,
    version_table,
)

R, V = resource_table.c, version_table.c
_TOKEN_KEYS = {"status", "intent", "priority", "gender", "active"}
_DATE_KEYS = {
    "authoredOn",
    "birthDate",
    "effectiveDateTime",
    "dateTime",
    "recorded",
    "onsetDateTime",
}
JSON = "application/fhir+json"


def _now_us() -> int:
    return time.time_ns() // 1000


def index_rows(resource: dict[str, Any]) -> dict[Any, list[dict[str, Any]]]:
    """Naive search-index rows from top-level elements only (no search-parameter table)."""
    key = {"resource_type": resource["resourceType"], "resource_id": resource["id"]}
    rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in INDEX_TABLES}
    seen: set[tuple[Any, ...]] = set()

    def add(table: Any, **values: Any) -> None:
        signature = (table.name, *values.values())
        if signature not in seen:
            seen.add(signature)
            rows[table].append(key | values)

    for name, value in resource.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                if isinstance(item.get("reference"), str):
                    target_type, _, target_id = item["reference"].partition("/")
                    add(
                        reference_table,
                        param=name,
                        target_type=target_type,
                        target_id=target_id.split("/")[0],
                        target_base="",
                    )
                for coding in item.get("coding") or []:
                    add(
                        token_table,
                        param=name,
                        system=coding.get("system", ""),
                        code=coding.get("code", ""),
                    )
                if name == "identifier":
                    add(
                        token_table,
                        param=name,
                        system=item.get("system", ""),
                        code=item.get("value", ""),
                    )
                if name == "name":
                    for part in [item.get("family"), *(item.get("given") or [])]:
                        if isinstance(part, str):
                            add(string_table, param=name, normalised=part.lower(), exact=part)
            elif name in _TOKEN_KEYS:
                add(token_table, param=name, system="", code=str(item))
            elif name in _DATE_KEYS:
                add(date_table, param=name, low=0, high=0)
    for profile in (resource.get("meta") or {}).get("profile") or []:
        add(token_table, param="_profile", system="", code=profile)
    return rows


class Store:
    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)

    def write(
        self, connection: Connection, resource: dict[str, Any], now: int, *, create: bool
    ) -> int:
        resource_type, resource_id = resource["resourceType"], resource["id"]
        version_id = 1
        if not create:
            current = connection.execute(
                select(R.version_id).where(R.resource_type == resource_type, R.id == resource_id)
            ).first()
            if current is not None:
                version_id = current[0] + 1
        body = {**resource, "meta": {**(resource.get("meta") or {}), "versionId": str(version_id)}}
        connection.execute(
            insert(version_table).values(
                resource_type=resource_type,
                id=resource_id,
                version_id=version_id,
                last_updated=now,
                method="POST" if create else "PUT",
                body=orjson.dumps(body).decode(),
            )
        )
        values = {"version_id": version_id, "last_updated": now, "deleted": False}
        if version_id == 1:
            connection.execute(
                insert(resource_table).values(resource_type=resource_type, id=resource_id, **values)
            )
        else:
            connection.execute(
                update(resource_table)
                .where(R.resource_type == resource_type, R.id == resource_id)
                .values(**values)
            )
            for table in INDEX_TABLES:
                connection.execute(
                    delete(table).where(
                        table.c.resource_type == resource_type, table.c.resource_id == resource_id
                    )
                )
        for table, rows in index_rows(resource).items():
            if rows:
                connection.execute(insert(table), rows)
        if resource_type == "Task":  # the audit record Loopgate keeps for every Task version
            provenance = {
                "resourceType": "Provenance",
                "id": str(uuid.uuid4()),
                "target": [{"reference": f"Task/{resource_id}/_history/{version_id}"}],
                "recorded": "now",
                "agent": [{"who": {"reference": "Organization/unknown"}}],
            }
            self.write(connection, provenance, now, create=True)
        return version_id


def _reference_map(node: Any, mapping: dict[str, str]) -> None:
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str) and reference in mapping:
            node["reference"] = mapping[reference]
        for value in node.values():
            _reference_map(value, mapping)
    elif isinstance(node, list):
        for value in node:
            _reference_map(value, mapping)


def create_app(database_url: str) -> FastAPI:
    store = Store(database_url)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        with store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.post("/fhir")
    async def transaction(request: Request) -> Response:
        bundle = orjson.loads(await request.body())
        entries = bundle.get("entry") or []
        mapping = {}
        for entry in entries:
            resource = entry["resource"]
            if entry["request"]["method"] == "POST":
                resource["id"] = str(uuid.uuid4())
            if entry.get("fullUrl"):
                mapping[entry["fullUrl"]] = f"{resource['resourceType']}/{resource['id']}"
        _reference_map(entries, mapping)
        now = _now_us()
        results = []
        with write_transaction(store.engine) as connection:
            for entry in entries:
                resource = entry["resource"]
                create = entry["request"]["method"] == "POST"
                version = store.write(connection, resource, now, create=create)
                results.append(
                    {
                        "response": {
                            "status": "201 Created" if version == 1 else "200 OK",
                            "location": f"{resource['resourceType']}/{resource['id']}"
                            f"/_history/{version}",
                        }
                    }
                )
        answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": results}
        return Response(orjson.dumps(answer), media_type=JSON)

    @app.post("/fhir/{resource_type}")
    async def create(request: Request, resource_type: str) -> Response:
        resource = orjson.loads(await request.body())
        resource["id"] = str(uuid.uuid4())
        with write_transaction(store.engine) as connection:
            store.write(connection, resource, _now_us(), create=True)
        return Response(orjson.dumps(resource), status_code=201, media_type=JSON)

    @app.put("/fhir/{resource_type}/{resource_id}")
    async def put(request: Request, resource_type: str, resource_id: str) -> Response:
        resource = orjson.loads(await request.body())
        with write_transaction(store.engine) as connection:
            version = store.write(connection, resource, _now_us(), create=False)
        return Response(
            orjson.dumps(resource), status_code=201 if version == 1 else 200, media_type=JSON
        )

    @app.get("/fhir/{resource_type}/{resource_id}")
    async def read(resource_type: str, resource_id: str) -> Response:
        with read_transaction(store.engine) as connection:
            row = connection.execute(
                select(V.body)
                .select_from(
                    resource_table.join(
                        version_table,
                        (V.resource_type == R.resource_type)
                        & (V.id == R.id)
                        & (V.version_id == R.version_id),
                    )
                )
                .where(R.resource_type == resource_type, R.id == resource_id)
            ).first()
        if row is None:
            return Response(b"{}", status_code=404, media_type=JSON)
        return Response(row[0].encode(), media_type=JSON)

    @app.get("/fhir/{resource_type}")
    async def search(request: Request, resource_type: str) -> Response:
        conditions = [R.resource_type == resource_type]
        limit = 50
        for name, value in request.query_params.multi_items():
            if name == "_count":
                limit = int(value)
            elif "|" in value:
                system, _, code = value.partition("|")
                t = token_table.c
                conditions.append(
                    R.id.in_(
                        select(t.resource_id).where(
                            t.resource_type == resource_type,
                            t.param == name,
                            t.system == system,
                            t.code == code,
                        )
                    )
                )
            elif "/" in value:
                target_type, _, target_id = value.partition("/")
                r = reference_table.c
                conditions.append(
                    R.id.in_(
                        select(r.resource_id).where(
                            r.resource_type == resource_type,
                            r.param == name,
                            r.target_type == target_type,
                            r.target_id == target_id,
                        )
                    )
                )
        join = resource_table.join(
            version_table,
            (V.resource_type == R.resource_type) & (V.id == R.id) & (V.version_id == R.version_id),
        )
        with read_transaction(store.engine) as connection:
            rows = connection.execute(
                select(V.body).select_from(join).where(*conditions).limit(limit)
            ).all()
        answer = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": orjson.Fragment(row[0])} for row in rows],
        }
        return Response(orjson.dumps(answer), media_type=JSON)

    return app


def create_app_from_environment() -> FastAPI:
    """uvicorn factory: the database comes from LOOPGATE_DATABASE_URL, like Loopgate's."""
    return create_app(get_settings().database_url)
