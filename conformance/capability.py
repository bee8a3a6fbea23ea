"""Build the CapabilityStatement from the tables that drive the server (pure).

Resource types, interactions, profiles and search parameters all come from
``conformance.resource_types`` and ``conformance.search_parameters``, the same tables the routes
and the search engine use, so the statement says what is implemented and nothing more.
Spec: http://hl7.org/fhir/R4/capabilitystatement.html
"""

from typing import Any

from conformance.resource_types import RESOURCE_TYPES, ResourceTypeSpec
from conformance.resources import FHIR_VERSION
from conformance.search_parameters import COMMON, SEARCH_PARAMETERS, SearchParameter
from conformance.subscriptions.topics import TOPICS

_BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/"
_TOPIC_CANONICAL = f"{_BACKPORT}StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
_OPERATIONS: dict[str, list[dict[str, str]]] = {
    "Subscription": [
        {
            "name": "status",
            "definition": f"{_BACKPORT}OperationDefinition/backport-subscription-status",
        },
        {
            "name": "events",
            "definition": f"{_BACKPORT}OperationDefinition/backport-subscription-events",
        },
    ]
}

_WIRE_TYPES = {"id": "token", "last-updated": "date"}


def capability_statement(
    *,
    fhir_base: str,
    software_version: str,
    date: str,
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "Closed-loop referral gateway following the Gravity SDOH Clinical "
        "Care referral workflow; Task state changes are enforced server-side.",
    }
    if security:
        rest["security"] = security
    rest["resource"] = [_resource(spec) for spec in RESOURCE_TYPES.values()]
    rest["interaction"] = [
        {"code": "transaction"},
        {"code": "batch"},
        {"code": "history-system"},
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "Loopgate",
        "kind": "instance",
        "software": {"name": "Loopgate", "version": software_version},
        "implementation": {"description": "Loopgate referral gateway", "url": fhir_base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "application/fhir+json"],
        "rest": [rest],
    }


def _resource(spec: ResourceTypeSpec) -> dict[str, Any]:
    params = (*COMMON, *SEARCH_PARAMETERS.get(spec.name, ()))
    entry: dict[str, Any] = {"type": spec.name}
    if spec.name == "Subscription":  # topic discovery, Backport IG "Topics"
        entry["extension"] = [
            {"url": _TOPIC_CANONICAL, "valueCanonical": canonical} for canonical in TOPICS
        ]
    if spec.profiles:
        entry["supportedProfile"] = list(spec.profiles)
    entry["interaction"] = [{"code": code} for code in spec.interactions]
    entry.update(
        {
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": spec.writable,
            "conditionalCreate": spec.writable,
            "conditionalRead": "modified-since",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
            "referencePolicy": ["literal", "enforced", "local"],
        }
    )
    includes = [f"{spec.name}:{p.code}" for p in params if p.type == "reference"]
    if includes:
        entry["searchInclude"] = includes
    revincludes = _revincludes(spec.name)
    if revincludes:
        entry["searchRevInclude"] = revincludes
    entry["searchParam"] = [_search_param(p) for p in params]
    if spec.name in _OPERATIONS:
        entry["operation"] = _OPERATIONS[spec.name]
    return entry


def _revincludes(target: str) -> list[str]:
    found = []
    for source, params in SEARCH_PARAMETERS.items():
        for p in params:
            if p.type == "reference" and (not p.targets or target in p.targets):
                found.append(f"{source}:{p.code}")
    return found


def _search_param(parameter: SearchParameter) -> dict[str, Any]:
    return {
        "name": parameter.code,
        "definition": parameter.definition,
        "type": _WIRE_TYPES.get(parameter.type, parameter.type),
    }
