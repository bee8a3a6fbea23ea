"""Small checks the profile modules share: presence, required codes, codings, reference types."""

from collections.abc import Collection, Iterator
from typing import Any

from conformance.errors import Issue
from conformance.references import reference_type


def required(resource: dict[str, Any], element: str, path: str) -> Issue | None:
    if resource.get(element) in (None, "", [], {}):
        return Issue(f"{path} is required by the profile", (path,), "required")
    return None


def required_one_of(resource: dict[str, Any], elements: Collection[str], path: str) -> Issue | None:
    if not any(resource.get(e) not in (None, "", [], {}) for e in elements):
        return Issue(f"{path} is required by the profile", (path,), "required")
    return None


def code_in(value: Any, allowed: Collection[str], path: str, what: str) -> Issue | None:
    if value is not None and value not in allowed:
        return Issue(f"{path} is not a valid {what} code", (path,), "code-invalid")
    return None


def codings(concept: Any) -> Iterator[dict[str, Any]]:
    if isinstance(concept, dict):
        for coding in concept.get("coding", []) or []:
            if isinstance(coding, dict):
                yield coding


def has_coding(concept: Any, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in codings(concept))


def has_any_code(concept: Any) -> bool:
    return any(isinstance(c.get("code"), str) for c in codings(concept))


def codes_from(concept: Any, system: str) -> Iterator[str]:
    for coding in codings(concept):
        if coding.get("system") == system and isinstance(coding.get("code"), str):
            yield coding["code"]


def reference_to(value: Any, allowed_types: Collection[str], path: str, what: str) -> Issue | None:
    """An issue when a Reference visibly points at a type the profile does not allow."""
    if not isinstance(value, dict):
        return None
    target = reference_type(value)
    if target is not None and target not in allowed_types:
        return Issue(f"{path} must reference {what}", (path,), "invariant")
    return None


def compact(issues: list[Issue | None]) -> list[Issue]:
    return [issue for issue in issues if issue is not None]
