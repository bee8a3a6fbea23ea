"""Render errors and pydantic validation failures as FHIR R4 OperationOutcome (pure).

Spec: http://hl7.org/fhir/R4/operationoutcome.html. Details are written by us, never copied
from exception text or the payload, so an outcome never echoes PHI back.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from conformance.errors import GatewayError, Issue

# Our wording for each pydantic error type: the library's own messages may quote the input.
_PYDANTIC_MESSAGES: Mapping[str, str] = {
    "missing": "Required element is missing",
    "model_field_validation.missing": "Required element is missing",
    "extra_forbidden": "Unknown element",
    "string_type": "Expected a string",
    "string_pattern_mismatch": "Value does not match the required format",
    "string_too_short": "Value must not be empty",
    "bool_type": "Expected true or false",
    "bool_parsing": "Expected true or false",
    "int_type": "Expected an integer",
    "int_parsing": "Expected an integer",
    "int_from_float": "Expected an integer",
    "decimal_type": "Expected a decimal number",
    "decimal_parsing": "Expected a decimal number",
    "float_type": "Expected a number",
    "float_parsing": "Expected a number",
    "list_type": "Expected an array",
    "dict_type": "Expected an object",
    "model_type": "Expected an object",
    "model_attributes_type": "Expected an object",
    "model_validation_format": "Element has the wrong shape (object or array expected)",
    "value_error": "Invalid value",
    "greater_than_equal": "Value is out of range",
    "less_than_equal": "Value is out of range",
}


def outcome_from_error(error: GatewayError, *, request_id: str | None = None) -> dict[str, Any]:
    """The OperationOutcome for ``error``, one issue per problem found."""
    return outcome_from_issues(error.issues, default_code=error.issue_code, request_id=request_id)


def outcome_from_issues(
    issues: Iterable[Issue], *, default_code: str, request_id: str | None = None
) -> dict[str, Any]:
    rendered = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": issue.severity,
            "code": issue.code or default_code,
            "details": {"text": issue.detail},
        }
        if issue.expression:
            entry["expression"] = list(issue.expression)
        if request_id:
            entry["diagnostics"] = f"request-id={request_id}"
        rendered.append(entry)
    return {"resourceType": "OperationOutcome", "issue": rendered}


def informational_outcome(text: str) -> dict[str, Any]:
    """A success outcome, for ``Prefer: return=OperationOutcome`` and empty deletes."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "details": {"text": text}}],
    }


_ELEMENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def fhirpath_from_loc(root: str, loc: Sequence[str | int]) -> str:
    """``("name", 0, "family")`` under ``Patient`` → ``Patient.name[0].family``.

    A key that could not be an element name (``"denise@example.com"``) is shown as ``*``:
    it came from the client and may hold anything.
    """
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("root", "__root__"):
            continue
        else:
            path = child_path(path, part)
    return path


def child_path(path: str, key: str) -> str:
    """``path.key``, with a key that could not be an element name shown as ``*``."""
    return f"{path}.{key}" if _ELEMENT_NAME.match(key) else f"{path}.*"


def issues_from_validation_errors(root: str, errors: Iterable[Mapping[str, Any]]) -> list[Issue]:
    """Turn pydantic's ``ValidationError.errors()`` into issues without echoing any input."""
    issues: list[Issue] = []
    for error in errors:
        error_type = str(error.get("type", "value_error"))
        message = _PYDANTIC_MESSAGES.get(error_type, "Invalid value")
        code = (
            "structure"
            if error_type == "extra_forbidden"
            else ("required" if error_type.endswith("missing") else "value")
        )
        loc = error.get("loc", ())
        issues.append(Issue(detail=message, expression=(fhirpath_from_loc(root, loc),), code=code))
    return issues
