"""Parse and compare FHIR literal references (pure).

Spec: http://hl7.org/fhir/R4/references.html#literal. A reference is local when it is relative
(``Task/1``) or absolute under our own FHIR base; anything else is external and is compared by
its full URL. Gravity sends absolute references across servers (reference/gravity.md P-4).
"""

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ID_PATTERN = r"[A-Za-z0-9\-\.]{1,64}"
_ID_RE = re.compile(rf"^{ID_PATTERN}$")
_TYPE_RE = r"[A-Z][A-Za-z]+"
_RELATIVE_RE = re.compile(
    rf"^(?P<type>{_TYPE_RE})/(?P<id>{ID_PATTERN})(/_history/(?P<vid>{ID_PATTERN}))?$"
)
_ABSOLUTE_RE = re.compile(
    rf"^(?P<base>https?://[^\s/?#]+(/[^\s?#]*?)?)/(?P<type>{_TYPE_RE})/(?P<id>{ID_PATTERN})"
    rf"(/_history/(?P<vid>{ID_PATTERN}))?$"
)


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


@dataclass(frozen=True)
class ParsedReference:
    """A literal reference split into parts; ``base`` is None for a local reference."""

    resource_type: str
    id: str
    base: str | None = None
    version: str | None = None

    @property
    def is_local(self) -> bool:
        return self.base is None

    @property
    def key(self) -> str:
        """``Type/id`` for local references, the absolute URL for external ones."""
        local = f"{self.resource_type}/{self.id}"
        return local if self.base is None else f"{self.base}/{local}"


def normalise_base(base: str) -> str:
    return base.rstrip("/")


# a write parses the same few references (its patient, the organizations, the Task) several
# times over: checks, Task rules and search-index rows
@lru_cache(maxsize=4096)
def parse_reference(value: str, *, local_base: str | None = None) -> ParsedReference | None:
    """Parse ``Type/id[/_history/v]`` or ``http(s)://base/Type/id``; None for other forms.

    Other forms (``#contained``, ``urn:uuid:…``, logical identifiers) are legal FHIR but carry
    no server location; callers decide whether to accept them.
    """
    match = _RELATIVE_RE.match(value)
    if match:
        return ParsedReference(match["type"], match["id"], None, match["vid"])
    match = _ABSOLUTE_RE.match(value)
    if match:
        base = normalise_base(match["base"])
        if local_base is not None and base == normalise_base(local_base):
            return ParsedReference(match["type"], match["id"], None, match["vid"])
        return ParsedReference(match["type"], match["id"], base, match["vid"])
    return None


def reference_key(value: str | None, *, local_base: str | None = None) -> str | None:
    """A comparable identity for a reference string, or None when it has no location."""
    if not value:
        return None
    parsed = parse_reference(value, local_base=local_base)
    return parsed.key if parsed else None


def reference_type(reference: dict[str, Any], *, local_base: str | None = None) -> str | None:
    """The resource type a Reference points to: from its URL, else from ``Reference.type``."""
    value = reference.get("reference")
    if isinstance(value, str):
        parsed = parse_reference(value, local_base=local_base)
        if parsed:
            return parsed.resource_type
    declared = reference.get("type")
    return declared if isinstance(declared, str) else None


_NOT_WALKED = frozenset({"reference", "contained"})


def reference_strings(node: Any) -> list[str]:
    """Every ``Reference.reference`` string in a tree, outside ``contained`` resources.

    Lists are appended to rather than yielded: a resource is walked several times per write,
    and generators nested as deep as the tree cost half as much again as the walk."""
    found: list[str] = []
    _collect_strings(node, found)
    return found


def _collect_strings(node: Any, found: list[str]) -> None:
    if isinstance(node, dict):
        value = node.get("reference")
        if isinstance(value, str):
            found.append(value)
        for key, child in node.items():
            if isinstance(child, (dict, list)) and key not in _NOT_WALKED:
                _collect_strings(child, found)
    elif isinstance(node, list):
        for child in node:
            if isinstance(child, (dict, list)):
                _collect_strings(child, found)


def reference_paths(node: Any, path: str) -> list[tuple[str, str]]:
    """``(fhirpath, reference string)`` for every Reference in a tree, as ``reference_strings``
    finds them, each path starting at ``path``."""
    found: list[tuple[str, str]] = []
    _collect_paths(node, path, found)
    return found


def _collect_paths(node: Any, path: str, found: list[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        value = node.get("reference")
        if isinstance(value, str):
            found.append((f"{path}.reference", value))
        for key, child in node.items():
            if isinstance(child, (dict, list)) and key not in _NOT_WALKED:
                _collect_paths(child, f"{path}.{key}", found)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            if isinstance(child, (dict, list)):
                _collect_paths(child, f"{path}[{index}]", found)


def rewrite_references(node: Any, mapping: dict[str, str]) -> Any:
    """Replace, in place, every ``Reference.reference`` found in ``mapping`` (``urn:uuid:`` ids)."""
    if isinstance(node, dict):
        value = node.get("reference")
        if isinstance(value, str) and value in mapping:
            node["reference"] = mapping[value]
        for key, child in node.items():
            if key != "reference" and isinstance(child, (dict, list)):
                rewrite_references(child, mapping)
    elif isinstance(node, list):
        for child in node:
            rewrite_references(child, mapping)
    return node


@dataclass
class ReferenceScan:
    """Every reference in a resource, sorted by what a server must do with it."""

    local: list[tuple[str, ParsedReference]]
    """(FHIRPath, reference) for references to this server: they must resolve."""
    placeholders: list[str]
    """FHIRPaths of ``urn:uuid:``/``urn:oid:`` references: only a transaction can resolve them."""
    malformed: list[str]
    """FHIRPaths of reference strings that are no kind of reference."""


def scan_references(resource: dict[str, Any], *, local_base: str | None) -> ReferenceScan:
    root = str(resource.get("resourceType", "Resource"))
    scan = ReferenceScan(local=[], placeholders=[], malformed=[])
    for path, value in reference_paths(resource, root):
        if value.startswith("#"):
            continue
        if value.startswith(("urn:uuid:", "urn:oid:")):
            scan.placeholders.append(path)
            continue
        parsed = parse_reference(value, local_base=local_base)
        if parsed is None:
            if not value.startswith(("http://", "https://")) or " " in value:
                scan.malformed.append(path)
            continue
        if parsed.is_local:
            scan.local.append((path, parsed))
    return scan
