"""The FHIR version choice and structural validation: the only module that imports fhir.resources.

Loopgate speaks FHIR R4 (4.0.1) JSON on the wire. Current fhir.resources releases carry R5 at the
package root and R4B under ``fhir.resources.R4B``; R4B is wire-compatible with R4 for every
resource type we serve (ARCHITECTURE §7), so R4B models check structure: known elements, types,
cardinalities and primitive formats. They do not check required code bindings; the profile
rules in ``conformance.profiles`` do.

Validation is a check only: callers keep the client's JSON (patched with server fields) and never
re-serialise the model, which would cost twice the validation (reference/perf.md §4.1).
"""

from contextlib import suppress
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from conformance.errors import BadRequest, Issue, raise_if_issues
from conformance.outcome import child_path, issues_from_validation_errors

FHIR_VERSION = "4.0.1"

FhirJson = dict[str, Any]
"""A FHIR resource as parsed JSON. Past ``validate_structure`` its shape is known to be R4."""


def validate_structure(resource: FhirJson, *, root: str | None = None) -> None:
    """Check ``resource`` against the R4 structure of its ``resourceType``.

    Raises ``BadRequest`` listing every structural problem with its FHIRPath. ``root`` prefixes
    the paths, e.g. ``Bundle.entry[2].resource`` for an entry of a transaction.
    """
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise BadRequest("The body is not a FHIR resource: resourceType is missing")
    if not well_shaped(resource):
        raise_if_issues(json_shape_issues(resource, root or resource_type), BadRequest)
    try:
        model_class = get_fhir_model_class(resource_type)
    except (KeyError, ValueError) as exc:
        raise BadRequest("Unknown resourceType", expression=(root or "resourceType",)) from exc
    try:
        model_class.model_validate(resource)
    except ValidationError as exc:
        issues = issues_from_validation_errors(root or resource_type, exc.errors())
        raise_if_issues(issues, BadRequest)
    except (TypeError, ValueError) as exc:  # a validator that raises outside pydantic's wrapper
        raise BadRequest(
            "The resource could not be parsed as FHIR R4", expression=(root or resource_type,)
        ) from exc


def json_shape_issues(node: Any, path: str) -> list[Issue]:
    """FHIR JSON rules the models let through: no nulls, no empty objects, arrays or strings.

    http://hl7.org/fhir/R4/json.html: "null values are not allowed" (except inside arrays of
    primitives aligned with their ``_element`` twins), and empty objects, arrays and strings
    are never sent, since an element has a value or children or is absent.
    """
    issues: list[Issue] = []
    if isinstance(node, dict):
        if not node:
            issues.append(Issue("Empty objects are not allowed in FHIR JSON", (path,), "value"))
        for key, child in node.items():
            here = child_path(path, key)
            if child is None:
                issues.append(Issue("null is not allowed in FHIR JSON", (here,), "value"))
            else:
                issues.extend(json_shape_issues(child, here))
    elif isinstance(node, list):
        if not node:
            issues.append(Issue("Empty arrays are not allowed in FHIR JSON", (path,), "value"))
        for index, child in enumerate(node):
            if child is not None:
                issues.extend(json_shape_issues(child, f"{path}[{index}]"))
        if node and all(child is None for child in node):
            issues.append(Issue("An array of only nulls is not allowed", (path,), "value"))
    elif node == "":
        issues.append(Issue("Empty strings are not allowed in FHIR JSON", (path,), "value"))
    return issues


def well_shaped(node: Any) -> bool:
    """``json_shape_issues`` would find nothing: the same walk without building a path for
    every element, which cost more than the walk (paths are built only to report)."""
    if isinstance(node, dict):
        return bool(node) and all(
            child is not None and well_shaped(child) for child in node.values()
        )
    if isinstance(node, list):
        return (
            bool(node)
            and any(child is not None for child in node)
            and all(child is None or well_shaped(child) for child in node)
        )
    return not (isinstance(node, str) and not node)


def warm_up(resource_types: list[str]) -> None:
    """Build the lazy validation schemas now, not on the first request (perf.md §4.9)."""
    for resource_type in resource_types:
        model_class = get_fhir_model_class(resource_type)
        with suppress(ValidationError):
            model_class.model_validate({"resourceType": resource_type})
