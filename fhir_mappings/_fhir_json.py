"""Tolerant readers for raw FHIR JSON shared by the view and the action mappings.

Receivers SHALL NOT fail on missing or unexpected optional data (Gravity conf-6/8/9,
reference/gravity.md §7), so every reader here returns None or an empty list instead of raising.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from conformance.references import parse_reference

Resource = dict[str, Any]
"""A FHIR resource (or element) as parsed JSON."""


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def objs(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def codings(concept: Any) -> Iterator[dict[str, Any]]:
    yield from objs(obj(concept).get("coding"))


def coding_in(concept: Any, system: str) -> dict[str, Any] | None:
    """The first coding of ``concept`` from ``system`` that has a code."""
    return next(
        (c for c in codings(concept) if c.get("system") == system and text(c.get("code"))), None
    )


def concept_text(concept: Any) -> str | None:
    """What a person should read for a CodeableConcept: its text, else a display, else a code."""
    found = text(obj(concept).get("text"))
    if found:
        return found
    for key in ("display", "code"):
        for coding in codings(concept):
            if text(coding.get(key)):
                return str(coding[key])
    return None


def reference_text(reference: Any) -> str | None:
    return text(obj(reference).get("reference"))


def same_resource(left: str | None, right: str | None) -> bool:
    """Whether two literal references name the same resource, versions aside.

    A relative reference is compared by type and id only: the server it is relative to is not
    known here (http://hl7.org/fhir/R4/references.html#literal, gravity.md P-4).
    """
    if not left or not right:
        return False
    one, other = parse_reference(left), parse_reference(right)
    if one is None or other is None:
        return left == right
    if one.resource_type != other.resource_type or one.id != other.id:
        return False
    return one.base is None or other.base is None or one.base == other.base


def local_key(resource: Resource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def server_base(reference: str | None) -> str | None:
    """The FHIR base of an absolute reference; None for a relative one."""
    parsed = parse_reference(reference) if reference else None
    return parsed.base if parsed else None


def absolute(reference: dict[str, Any], base: str | None) -> dict[str, Any]:
    """A copy of ``reference`` made absolute against ``base`` when it is relative.

    A relative reference copied from a resource on another server would otherwise point at the
    wrong server (http://hl7.org/fhir/R4/references.html#literal, gravity.md P-4).
    """
    copied = dict(reference)
    value = reference_text(reference)
    parsed = parse_reference(value) if value else None
    if base and parsed is not None and parsed.base is None and value:
        copied["reference"] = f"{base}/{value}"
    return copied


def parse_datetime(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime (a date or no zone is UTC)."""
    if not isinstance(value, str):
        return None
    padded = {4: "-01-01", 7: "-01"}.get(len(value), "")
    try:
        moment = datetime.fromisoformat(value + padded)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
