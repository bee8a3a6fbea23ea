"""SMART scopes (v1 and v2 grammar), which registered scope covers which request, and Grants.

Spec: http://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html. A resource scope is
``(patient|user|system)/(Type|*).(cruds-letters | read | write | *)[?param=value(&…)]``; the
letters must be a non-empty, in-order subset of ``cruds``. Pure: no I/O.
"""

import re
from dataclasses import dataclass
from urllib.parse import unquote

from conformance.access import Grant, Letter, Level
from conformance.resource_types import RESOURCE_TYPES

CONTEXT_SCOPES = frozenset(
    {
        "launch",
        "launch/patient",
        "launch/encounter",
        "openid",
        "fhirUser",
        "profile",
        "offline_access",
        "online_access",
    }
)
"""Scopes that ask for launch context, identity or refresh, not for data."""

ALL_LETTERS: frozenset[Letter] = frozenset({"c", "r", "u", "d", "s"})
_V1_LETTERS: dict[str, frozenset[Letter]] = {
    "read": frozenset({"r", "s"}),
    "write": frozenset({"c", "u", "d"}),
    "*": ALL_LETTERS,
}
_RESOURCE_SCOPE = re.compile(
    r"^(?P<level>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})"
    r"\.(?P<permission>read|write|\*|c?r?u?d?s?)(?:\?(?P<query>.+))?$"
)
_SHAPE = re.compile(r"^(patient|user|system)/[^.]+\.")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
MAX_SCOPE_LENGTH = 2048


class MalformedScope(ValueError):
    """A scope that is not SMART grammar, names an unknown type, or misorders its letters."""

    def __init__(self, message: str, scope: str = "") -> None:
        super().__init__(message)
        self.scope = scope


@dataclass(frozen=True)
class ResourceScope:
    level: Level
    resource_type: str
    letters: frozenset[Letter]
    constraints: tuple[tuple[str, str], ...] = ()
    """Sorted ``(param, value)`` pairs; a resource must match all of them."""

    def covers(self, other: "ResourceScope") -> bool:
        """True when everything ``other`` allows, this allows too (a wildcard covers a type)."""
        return (
            self.level == other.level
            and self.resource_type in ("*", other.resource_type)
            and other.letters <= self.letters
            and set(self.constraints) <= set(other.constraints)
        )

    def grant(self) -> Grant:
        return Grant(self.level, self.resource_type, self.letters, self.constraints)


@dataclass(frozen=True)
class Scope:
    text: str
    """Exactly as written, so a v1 request gets v1 scopes back (SMART: SHOULD)."""
    resource: ResourceScope | None = None
    """None for a context scope (``launch``, ``openid`` …)."""

    def covers(self, other: "Scope") -> bool:
        if self.resource is None or other.resource is None:
            return self.text == other.text
        return self.resource.covers(other.resource)


def parse_scope(text: str) -> Scope:
    try:
        return _parse_scope(text)
    except MalformedScope as error:
        raise MalformedScope(str(error), text) from None


def _parse_scope(text: str) -> Scope:
    if text in CONTEXT_SCOPES:
        return Scope(text)
    match = _RESOURCE_SCOPE.match(text)
    if match is None and _SHAPE.match(text) and "?" not in text:
        raise MalformedScope("permissions must be letters of cruds in that order, or read/write/*")
    if match is None:
        raise MalformedScope("not a SMART scope")
    resource_type = match["type"]
    if resource_type != "*" and resource_type not in RESOURCE_TYPES:
        raise MalformedScope("unknown resource type")
    permission = match["permission"]
    if permission in _V1_LETTERS:
        if match["query"] is not None:
            raise MalformedScope("v1 scopes take no ?param constraints")
        letters = _V1_LETTERS[permission]
    elif permission:
        letters = frozenset(permission)  # type: ignore[arg-type]  # the regex admits only cruds
    else:
        raise MalformedScope("no permission letters")
    constraints = _constraints(match["query"]) if match["query"] is not None else ()
    level: Level = match["level"]  # type: ignore[assignment]  # the regex admits only levels
    return Scope(text, ResourceScope(level, resource_type, letters, constraints))


def _constraints(query: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        # Modifiers (code:in), chaining (a.b) and _filter are experimental: refused, not ignored.
        if not equals or not value or not _PARAM_NAME.match(name) or name == "_filter":
            raise MalformedScope("scope constraints must be param=value pairs")
        pairs.append((name, unquote(value)))
    return tuple(sorted(pairs))


def parse_scopes(text: str | None) -> list[Scope]:
    """Every scope in a space-separated string, duplicates removed; raises MalformedScope."""
    if text is None:
        return []
    if len(text) > MAX_SCOPE_LENGTH:
        raise MalformedScope("the scope parameter is too long")
    seen: dict[str, Scope] = {}
    for word in text.split(" "):
        if word and word not in seen:
            seen[word] = parse_scope(word)
    return list(seen.values())


def narrow(requested: list[Scope], allowed: list[Scope]) -> list[Scope]:
    """The requested scopes some allowed scope covers; the rest are dropped, not refused."""
    return [scope for scope in requested if any(grant.covers(scope) for grant in allowed)]


def scope_text(scopes: list[Scope]) -> str:
    return " ".join(scope.text for scope in scopes)


def names(scopes: list[Scope]) -> frozenset[str]:
    return frozenset(scope.text for scope in scopes)


def grants_of(scope: str) -> tuple[Grant, ...]:
    """The resource scopes of a granted scope string as ``conformance.access.Grant`` values."""
    return tuple(
        parsed.resource.grant() for parsed in parse_scopes(scope) if parsed.resource is not None
    )


def has_patient_scope(scopes: list[Scope]) -> bool:
    return any(s.resource is not None and s.resource.level == "patient" for s in scopes)


def has_resource_scope(scopes: list[Scope]) -> bool:
    return any(s.resource is not None for s in scopes)
