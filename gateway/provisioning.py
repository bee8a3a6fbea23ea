"""The provisioning file: the network's directory, users and clients, applied idempotently.

Read at start from ``LOOPGATE_PROVISION_FILE`` and by ``loopgate provision FILE``. Shape::

    {"resources": [FHIR R4 resources with ids],
     "users": [{"username", "password", "fhir_user", "organization", "roles"}],
     "clients": [{"client_id", "type", "jwks" | "jwks_uri", "client_secret", "redirect_uris",
                  "launch_uri", "scope", "organization"}],
     "partners": [{"organization", "api_keys", "webhook": {"url", "secret"}, "emails",
                   "policy": {"consent_required", "auto_decline_at_capacity",
                              "respond_within_hours", "close_within_days"}}]}

Resources are written in one transaction (PUT by id, so re-applying changes nothing);
users and clients go to ``smart_auth``; partners (community organizations on the JSON API)
get their policy, webhook and API keys (stored hashed). A bad file is refused with the path
of the bad field.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from conformance.access import SYSTEM
from conformance.errors import GatewayError
from conformance.references import is_valid_id
from gateway.access.patients import StorePatientDirectory
from gateway.app import smart_settings
from gateway.fhir import FhirService
from gateway.fhir.transaction import BundleProcessor
from gateway.partners.api_keys import store_api_key
from gateway.partners.policy import PartnerSpec, upsert_partner
from gateway.settings import Settings
from gateway.store import resource_rows
from gateway.store.engine import make_engine, write_transaction
from smart_auth import SmartAuth

KNOWN_KEYS = ("resources", "users", "clients", "partners")


class ProvisioningError(ValueError):
    """The file cannot be applied; the message names the file's bad field."""


@dataclass(frozen=True)
class ProvisioningFile:
    resources: list[dict[str, Any]]
    users: list[dict[str, Any]]
    clients: list[dict[str, Any]]
    partners: list[PartnerSpec] = field(default_factory=list)


@dataclass(frozen=True)
class ProvisioningResult:
    created: int
    """Resources that did not exist before."""
    existing: int
    """Resources that existed: updated where the file differs, else left as they were."""


def read_provisioning_file(path: Path) -> ProvisioningFile:
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ProvisioningError(f"{path}: cannot be read ({exc.strerror})") from exc
    except orjson.JSONDecodeError as exc:
        raise ProvisioningError(f"{path}: not valid JSON (line {exc.lineno})") from exc
    return parse_provisioning(document)


def parse_provisioning(document: Any) -> ProvisioningFile:
    if not isinstance(document, dict):
        raise ProvisioningError("the provisioning file must be a JSON object")
    unknown = sorted(set(document) - set(KNOWN_KEYS))
    if unknown:
        raise ProvisioningError(
            f"{unknown[0]}: unknown key; the file holds {', '.join(KNOWN_KEYS)}"
        )
    lists = {}
    for key in KNOWN_KEYS:
        value = document.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ProvisioningError(f"{key}: must be an array of objects")
        lists[key] = value
    for index, resource in enumerate(lists["resources"]):
        where = f"resources[{index}]"
        if not isinstance(resource.get("resourceType"), str):
            raise ProvisioningError(f"{where}.resourceType: required")
        if not isinstance(resource.get("id"), str) or not is_valid_id(resource["id"]):
            raise ProvisioningError(f"{where}.id: every provisioned resource needs a valid id")
    partners = [_partner(index, item) for index, item in enumerate(lists["partners"])]
    return ProvisioningFile(lists["resources"], lists["users"], lists["clients"], partners)


def _partner(index: int, item: dict[str, Any]) -> PartnerSpec:
    try:
        return PartnerSpec.model_validate(item)
    except ValidationError as error:
        problem = error.errors()[0]
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"]
        )
        # pydantic's message without the input, which could be a secret
        message = str(problem["msg"]).removeprefix("Value error, ")
        raise ProvisioningError(f"partners[{index}]{where}: {message}") from None


def apply_provisioning(
    provisioning: ProvisioningFile,
    *,
    service: FhirService,
    provision_auth: Callable[..., None] | None = None,
) -> ProvisioningResult:
    """Write the resources (one transaction), then hand users and clients to ``smart_auth``."""
    result = ProvisioningResult(0, 0)
    if provisioning.resources:
        result = _apply_resources(provisioning.resources, service)
    if provision_auth is not None and (provisioning.users or provisioning.clients):
        provision_auth(users=provisioning.users, clients=provisioning.clients)
    elif provisioning.users or provisioning.clients:
        raise ProvisioningError("users and clients need the SMART authorization server")
    if provisioning.partners:
        _apply_partners(provisioning.partners, service)
    return result


def provision_database(settings: Settings, provisioning: ProvisioningFile) -> ProvisioningResult:
    """Apply ``provisioning`` to the database ``settings`` name (its schema must be current)."""
    engine = make_engine(settings.database_url)
    try:
        service = FhirService(engine, fhir_base=settings.fhir_base)
        smart = SmartAuth(
            settings=smart_settings(settings),
            engine=engine,
            http=httpx.AsyncClient(),  # unused here: provisioning fetches nothing
            patients=StorePatientDirectory(service),
        )
        return apply_provisioning(provisioning, service=service, provision_auth=smart.provision)
    finally:
        engine.dispose()


def _apply_resources(resources: list[dict[str, Any]], service: FhirService) -> ProvisioningResult:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": resource,
                "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
            }
            for resource in resources
        ],
    }
    try:
        response = BundleProcessor(service).process(SYSTEM, bundle, representation=False)
    except GatewayError as error:
        where = (error.expression or ("",))[0].replace("Bundle.entry[", "resources[")
        where = where.replace("].resource", "]")
        raise ProvisioningError(f"{where}: {error.detail}") from error
    statuses = [entry["response"]["status"] for entry in response["entry"]]
    created = sum(status.startswith("201") for status in statuses)
    return ProvisioningResult(created=created, existing=len(statuses) - created)


def _apply_partners(partners: list[PartnerSpec], service: FhirService) -> None:
    """Each partner's policy, webhook and e-mails, and its API keys (hashed), in one
    transaction; keys issued since (CLI or API) are kept."""
    with write_transaction(service.engine) as connection:
        for index, partner in enumerate(partners):
            where = f"partners[{index}]"
            organization = resource_rows.current(connection, *partner.organization.split("/"))
            if organization is None or organization.deleted:
                raise ProvisioningError(
                    f"{where}.organization: {partner.organization} is not stored; list it "
                    "under resources"
                )
            upsert_partner(connection, partner)
            for number, key in enumerate(partner.api_keys):
                stored = store_api_key(connection, partner.organization, key)
                if stored.organization != partner.organization:
                    raise ProvisioningError(
                        f"{where}.api_keys[{number}]: this key already belongs to another "
                        "organization"
                    )
