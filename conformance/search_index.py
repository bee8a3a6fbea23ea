"""Extract search-index values from a resource along its search parameters' paths (pure).

Values land in four shapes (token, reference, date range, string); the store writes them as
rows so that searches are plain indexed SQL. Spec: http://hl7.org/fhir/R4/search.html
"""

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from conformance.fhir_time import MAX_US, MIN_US, InvalidDate, date_range
from conformance.references import parse_reference, reference_strings
from conformance.search_parameters import SearchParameter, indexed_parameters

ANY_REFERENCE = "_reference"
"""Internal index parameter for local references that no search parameter indexes.

With it, the reference rows of a resource (whatever their parameter) name every local
resource it points at. Not searchable by clients; Loopgate uses the rows to refuse deleting
what is still referenced and to find what a referral's Tasks and ServiceRequests make visible
to their organizations."""
STRING_INDEX_LENGTH = 200
TOKEN_INDEX_LENGTH = 255


@dataclass(frozen=True)
class TokenValue:
    param: str
    system: str
    code: str

    def __post_init__(self) -> None:  # index columns are bounded; queries truncate alike
        object.__setattr__(self, "system", self.system[:TOKEN_INDEX_LENGTH])
        object.__setattr__(self, "code", self.code[:TOKEN_INDEX_LENGTH])


@dataclass(frozen=True)
class ReferenceValue:
    param: str
    target_type: str
    target_id: str
    target_base: str
    """Empty for a local reference; the server base URL for an external one."""


@dataclass(frozen=True)
class DateValue:
    param: str
    low: int
    high: int


@dataclass(frozen=True)
class StringValue:
    param: str
    normalised: str
    exact: str


@dataclass
class IndexEntries:
    tokens: list[TokenValue] = field(default_factory=list)
    references: list[ReferenceValue] = field(default_factory=list)
    dates: list[DateValue] = field(default_factory=list)
    strings: list[StringValue] = field(default_factory=list)


def normalise_string(text: str) -> str:
    """Case- and accent-insensitive form used by string search (``Rivera`` ≈ ``rivéra``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())[:STRING_INDEX_LENGTH]


def values_at(node: Any, path: str) -> list[Any]:
    """Every value reached by a dotted JSON path, stepping through arrays."""
    current: list[Any] = [node]
    for step in _steps(path):
        following: list[Any] = []
        for item in current:
            if isinstance(item, dict) and step in item:
                value = item[step]
                if isinstance(value, list):
                    following.extend(value)
                else:
                    following.append(value)
        current = following
    return current


@lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def extract_index(
    resource: dict[str, Any],
    *,
    local_base: str | None,
    local_references: Iterable[tuple[str, str]] | None = None,
) -> IndexEntries:
    """``resource``'s index values. ``local_references``: the (type, id) of every local
    reference in it, in document order, when the caller has them already (a write's
    reference check finds the same); otherwise they are looked for here."""
    entries = IndexEntries()
    for param in indexed_parameters(str(resource.get("resourceType"))):
        for path in param.paths:
            for value in values_at(resource, path):
                _add(entries, param, value, local_base)
    if local_references is None:
        local_references = _local_references(resource, local_base)
    indexed = {(r.target_type, r.target_id) for r in entries.references if not r.target_base}
    for key in local_references:
        if key not in indexed:
            indexed.add(key)
            entries.references.append(ReferenceValue(ANY_REFERENCE, key[0], key[1], ""))
    return entries


def _local_references(resource: dict[str, Any], local_base: str | None) -> list[tuple[str, str]]:
    keys = []
    for text in reference_strings(resource):
        parsed = parse_reference(text, local_base=local_base)
        if parsed is not None and parsed.is_local:
            keys.append((parsed.resource_type, parsed.id))
    return keys


def local_target(entries: IndexEntries, param: str) -> str | None:
    """``Type/id`` of the local resource ``param`` references, as its index row records it;
    None when it references nothing local. For a parameter of one reference (``Task.owner``)."""
    for reference in entries.references:
        if reference.param == param and not reference.target_base:
            return f"{reference.target_type}/{reference.target_id}"
    return None


def _add(entries: IndexEntries, param: SearchParameter, value: Any, local_base: str | None) -> None:
    if param.type in ("token", "uri"):
        entries.tokens.extend(_tokens(param.code, value, uri=param.type == "uri"))
    elif param.type == "reference":
        reference = _reference(param, value, local_base)
        if reference:
            entries.references.append(reference)
    elif param.type == "date":
        dated = _date(param.code, value)
        if dated:
            entries.dates.append(dated)
    elif param.type == "string":
        entries.strings.extend(
            StringValue(param.code, normalise_string(text), text[:STRING_INDEX_LENGTH])
            for text in _strings(value)
        )


def _tokens(code: str, value: Any, *, uri: bool) -> Iterator[TokenValue]:
    if uri:
        if isinstance(value, str):
            yield TokenValue(code, "", value)
        return
    if isinstance(value, bool):
        yield TokenValue(code, "", "true" if value else "false")
    elif isinstance(value, str):
        yield TokenValue(code, "", value)
    elif isinstance(value, dict):
        if "coding" in value:  # CodeableConcept
            codings = value["coding"] if isinstance(value["coding"], list) else []
            for coding in codings:
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    yield TokenValue(code, str(coding.get("system", "")), coding["code"])
        elif isinstance(value.get("code"), str):  # Coding
            yield TokenValue(code, str(value.get("system", "")), value["code"])
        elif isinstance(value.get("value"), str):  # Identifier
            yield TokenValue(code, str(value.get("system", "")), value["value"])


def _reference(param: SearchParameter, value: Any, local_base: str | None) -> ReferenceValue | None:
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    parsed = parse_reference(value["reference"], local_base=local_base)
    if parsed is None:
        return None
    if param.targets and parsed.resource_type not in param.targets:
        return None
    return ReferenceValue(param.code, parsed.resource_type, parsed.id, parsed.base or "")


def _date(code: str, value: Any) -> DateValue | None:
    try:
        if isinstance(value, str):
            low, high = date_range(value)
            return DateValue(code, low, high)
        if isinstance(value, dict) and ("start" in value or "end" in value):  # Period
            low = date_range(value["start"])[0] if "start" in value else MIN_US
            high = date_range(value["end"])[1] if "end" in value else MAX_US
            return DateValue(code, low, high)
    except InvalidDate:
        return None
    return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):  # HumanName, Address: every textual part
        for key in (
            "text",
            "family",
            "given",
            "prefix",
            "suffix",
            "line",
            "city",
            "district",
            "state",
            "postalCode",
            "country",
        ):
            part = value.get(key)
            parts = part if isinstance(part, list) else [part]
            yield from (p for p in parts if isinstance(p, str))
