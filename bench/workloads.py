"""The timed workloads, as request factories the load generator calls once per request.

Each factory returns ``Request(kind, raw_http_bytes, ok_statuses)`` for request number ``n``
(a counter shared by every connection) or None when it has nothing left to send. Bodies are
built and serialised with orjson inside the load generator process; that costs a few µs per
request and is included in the generator's reported CPU.
"""

import random
from dataclasses import dataclass
from typing import Any

import orjson

from bench import payloads

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class Request:
    kind: str
    raw: bytes
    ok: frozenset[int]


OK_200 = frozenset({200})
OK_2XX = frozenset(range(200, 300))


def http_request(
    method: str, path: str, host: str, headers: dict[str, str], body: bytes | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Accept: {FHIR_JSON}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines += [f"Content-Type: {FHIR_JSON}", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body is not None else head


class Workload:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.host = f"{spec['host']}:{spec['port']}"
        self.auth: dict[str, dict[str, str]] = spec["auth"]
        self.params: dict[str, Any] = spec.get("params", {})

    def headers(self, organization: str) -> dict[str, str]:
        return self.auth[organization]

    def request(self, n: int) -> Request | None:
        raise NotImplementedError


class Referrals(Workload):
    """(a) POST /fhir: transaction Bundle Patient(ifNoneExist) + SR + Condition + Consent + Task."""

    def request(self, n: int) -> Request | None:
        mrn = f"{self.params['tag']}-{n}"
        body = orjson.dumps(payloads.referral_bundle(mrn, n))
        raw = http_request("POST", "/fhir", self.host, self.headers(payloads.HOSPITAL), body)
        return Request("referral", raw, OK_200)


class StatusUpdates(Workload):
    """(b) PUT Task/st-n as the owner CBO, requested → accepted, each Task once; only 200 counts."""

    def request(self, n: int) -> Request | None:
        if n >= self.params["count"]:
            return None
        body = orjson.dumps(payloads.status_task(n, "accepted"))
        headers = {**self.headers(payloads.CBO_WORK), "If-Match": 'W/"1"'}
        raw = http_request("PUT", f"/fhir/Task/st-{n}", self.host, headers, body)
        return Request("status-update", raw, OK_200)


class CrudMix(Workload):
    """(c) 40 % read by id, 20 % search, 20 % create, 20 % update of Patient and Observation."""

    SLOTS = ("read", "read", "read", "read", "search", "search", "create", "create", "update")
    SLOTS += ("update",)

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.random = random.Random(spec.get("seed", 7))
        self.order = list(self.SLOTS)
        self.tag = self.params["tag"]

    def request(self, n: int) -> Request | None:
        if n % 10 == 0:
            self.random.shuffle(self.order)
        kind = self.order[n % 10]
        pick = self.random.randrange(1 << 30)
        patients = n % 2 == 0  # alternate Patient and Observation
        headers = self.headers(payloads.HOSPITAL)
        if kind == "read":
            if patients:
                path = f"/fhir/Patient/{payloads.pool_patient_id(pick)}"
            else:
                path = f"/fhir/Observation/{payloads.pool_observation_id(pick)}"
            return Request(kind, http_request("GET", path, self.host, headers), OK_200)
        if kind == "search":
            if patients:
                path = f"/fhir/Patient?identifier={payloads.MRN}|{payloads.pool_mrn(pick)}"
            else:
                path = (
                    f"/fhir/Observation?subject=Patient/{payloads.pool_patient_id(pick)}&_count=10"
                )
            return Request(kind, http_request("GET", path, self.host, headers), OK_200)
        if kind == "create":
            if patients:
                resource = payloads.patient(None, f"{self.tag}-{n}", n)
            else:
                resource = payloads.observation(
                    None, f"Patient/{payloads.pool_patient_id(pick)}", n
                )
            path = f"/fhir/{resource['resourceType']}"
            raw = http_request("POST", path, self.host, headers, orjson.dumps(resource))
            return Request(kind, raw, frozenset({201}))
        # update: walk the pool in order so no two in-flight updates hit the same resource;
        # the value changes on every pass so each PUT is a real new version.
        if patients:
            resource = payloads.pool_patient(n // 2)
            resource["telecom"][0]["value"] = f"555-{n % 10_000_000:07d}"
        else:
            resource = payloads.pool_observation(n // 2, value=n)
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        raw = http_request("PUT", path, self.host, headers, orjson.dumps(resource))
        return Request(kind, raw, OK_200)


class TaskInboxSearch(Workload):
    """(d) the CBO polling its inbox: Task?owner=…&status=requested&_lastUpdated=gt<instant>."""

    def request(self, n: int) -> Request | None:
        path = (
            f"/fhir/Task?owner={payloads.CBO_INBOX}&status=requested"
            f"&_lastUpdated=gt{self.params['since']}"
        )
        raw = http_request("GET", path, self.host, self.headers(payloads.CBO_INBOX))
        return Request("task-search", raw, OK_200)


WORKLOADS: dict[str, type[Workload]] = {
    "referrals": Referrals,
    "status-updates": StatusUpdates,
    "crud-mix": CrudMix,
    "task-search": TaskInboxSearch,
}
