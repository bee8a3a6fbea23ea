"""Parse FHIR search parameters into a validated ``SearchRequest`` (pure).

Spec: http://hl7.org/fhir/R4/search.html. An unknown parameter, modifier or malformed value is a
400, unless the client asked for ``Prefer: handling=lenient``, in which case unknown parameters
are skipped and left out of the self link.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

from conformance.errors import BadRequest, UnknownSearchParameter
from conformance.fhir_time import InvalidDate, date_range
from conformance.references import is_valid_id, parse_reference
from conformance.resource_types import RESOURCE_TYPES
from conformance.search_parameters import SearchParameter, parameters_for

DatePrefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_MODIFIERS = {
    "token": {"missing", "not"},
    "uri": {"missing"},
    "reference": {"missing"},
    "date": {"missing"},
    "string": {"missing", "exact", "contains"},
    "id": set(),
    "last-updated": set(),
}
_IGNORED = {"_format", "_pretty"}  # answered by the HTTP layer


@dataclass(frozen=True)
class TokenQuery:
    system: str | None
    """None matches any system; ``""`` matches codes given without a system."""
    code: str | None


@dataclass(frozen=True)
class ReferenceQuery:
    target_type: str | None
    target_id: str
    target_base: str


@dataclass(frozen=True)
class DateQuery:
    prefix: DatePrefix
    low: int
    high: int


@dataclass(frozen=True)
class ChainQuery:
    """``focus:ServiceRequest.category=x``: the referenced resource must match ``criterion``."""

    target_type: str
    criterion: "Criterion"


ValueQuery = TokenQuery | ReferenceQuery | DateQuery | ChainQuery | str | bool


@dataclass(frozen=True)
class Criterion:
    parameter: SearchParameter
    modifier: str | None
    """A FHIR modifier (``missing``, ``not``, ``exact``…) or ``chain`` for a chained one."""
    values: tuple[ValueQuery, ...]
    """Alternatives (a comma-separated list): a resource matches if any value matches."""


@dataclass(frozen=True)
class Include:
    source_type: str
    parameter: SearchParameter
    target_type: str | None


@dataclass(frozen=True)
class SortKey:
    parameter: SearchParameter
    descending: bool


@dataclass
class SearchRequest:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    count: int = 50
    offset: int = 0
    total: Literal["none", "estimate", "accurate"] = "accurate"
    summary_count: bool = False
    echoed: list[tuple[str, str]] = field(default_factory=list)
    """The understood parameters, in order, for the self and paging links."""

    def query_string(self, *, offset: int | None = None) -> str:
        pairs = [*self.echoed, ("_count", str(self.count))]
        pairs.append(("_offset", str(self.offset if offset is None else offset)))
        return urlencode(pairs)


def parse_search(
    resource_type: str,
    pairs: Sequence[tuple[str, str]],
    *,
    local_base: str | None,
    lenient: bool = False,
    default_count: int = 50,
    max_count: int = 1000,
) -> SearchRequest:
    """Validate ``pairs`` (the decoded query string) for a search on ``resource_type``."""
    known = parameters_for(resource_type)
    request = SearchRequest(resource_type, count=default_count)
    for name, raw in pairs:
        if "\x00" in name or "\x00" in raw:
            # nothing stored can contain NUL (PostgreSQL text cannot), so no value with one
            # can match; say so instead of letting the database refuse the query
            raise BadRequest(
                "Search parameters and values cannot contain NUL (%00) characters",
                expression=() if "\x00" in name else (name,),
            )
        if name in _IGNORED:
            continue
        if name.startswith("_") and name.split(":")[0] in _RESULT_PARAMETERS:
            _RESULT_PARAMETERS[name.split(":")[0]](request, name, raw, max_count, lenient)
            if name != "_offset" and name != "_count":
                request.echoed.append((name, raw))
            continue
        if "." in name:
            chained = _chained(known, name, raw, local_base, lenient)
            if chained is not None:
                request.criteria.append(chained)
                request.echoed.append((name, raw))
            continue
        code, _, modifier = name.partition(":")
        parameter = known.get(code)
        if parameter is None:
            if lenient:
                continue
            raise UnknownSearchParameter(
                f"Unknown search parameter '{code}' for {resource_type}; see the "
                "CapabilityStatement at /fhir/metadata for the supported ones",
                expression=(name,),
            )
        request.criteria.append(_criterion(parameter, modifier or None, raw, local_base))
        request.echoed.append((name, raw))
    return request


def _chained(
    known: dict[str, SearchParameter],
    name: str,
    raw: str,
    local_base: str | None,
    lenient: bool,
) -> Criterion | None:
    """One level of chaining (search.html#chaining): ``reference[:Type].parameter=value``."""
    head, _, tail = name.partition(".")
    code, _, target = head.partition(":")
    parameter = known.get(code)
    if parameter is None or parameter.type != "reference":
        if lenient:
            return None
        raise UnknownSearchParameter(
            f"'{code}' is not a reference parameter one can chain from", expression=(name,)
        )
    target = target or (parameter.targets[0] if len(parameter.targets) == 1 else "")
    if target not in RESOURCE_TYPES:
        raise BadRequest(
            f"Name the type '{code}' points to, e.g. {code}:ServiceRequest.{tail}",
            expression=(name,),
        )
    inner_code, _, inner_modifier = tail.partition(":")
    inner = parameters_for(target).get(inner_code)
    if "." in tail or inner is None or inner.type == "last-updated":
        if lenient and "." not in tail:
            return None
        raise UnknownSearchParameter(
            f"Cannot chain to '{tail}' on {target}: one level, to one of its search parameters",
            expression=(name,),
        )
    criterion = _criterion(inner, inner_modifier or None, raw, local_base)
    return Criterion(parameter, "chain", (ChainQuery(target, criterion),))


def _criterion(
    parameter: SearchParameter, modifier: str | None, raw: str, local_base: str | None
) -> Criterion:
    type_modifier = parameter.type == "reference" and modifier in RESOURCE_TYPES
    if modifier is not None and modifier not in _MODIFIERS[parameter.type] and not type_modifier:
        raise BadRequest(
            f"Modifier ':{modifier}' is not supported on '{parameter.code}'",
            expression=(f"{parameter.code}:{modifier}",),
        )
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise BadRequest(":missing takes true or false", expression=(parameter.code,))
        return Criterion(parameter, modifier, (raw == "true",))
    pieces = _split_values(raw)
    if not pieces or any(p == "" for p in pieces):
        raise BadRequest(
            f"Search parameter '{parameter.code}' needs a value", expression=(parameter.code,)
        )
    values = tuple(_value(parameter, modifier, piece, local_base) for piece in pieces)
    return Criterion(parameter, modifier, values)


def _split_values(raw: str) -> list[str]:
    """Split on commas that are not escaped with a backslash (search.html#escaping)."""
    values, current, escaped = [], [], False
    for char in raw:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return values


def _value(
    parameter: SearchParameter, modifier: str | None, raw: str, local_base: str | None
) -> ValueQuery:
    kind = parameter.type
    if kind == "id":
        if not is_valid_id(raw):
            raise BadRequest("_id values must be FHIR ids", expression=("_id",))
        return raw
    if kind in ("date", "last-updated"):
        return _date_value(parameter.code, raw)
    if kind == "token":
        return _token_value(raw)
    if kind == "reference":
        return _reference_value(parameter, modifier, raw, local_base)
    return raw  # string and uri


def _date_value(code: str, raw: str) -> DateQuery:
    prefix: DatePrefix = "eq"
    text = raw
    if raw[:2] in _DATE_PREFIXES:
        prefix, text = raw[:2], raw[2:]  # type: ignore[assignment]
    try:
        low, high = date_range(text)
    except InvalidDate as exc:
        raise BadRequest(
            f"'{code}' needs a FHIR date such as 2025-03-10 or 2025-03-10T14:05:00Z, "
            "optionally prefixed with eq, ne, gt, lt, ge, le, sa, eb or ap",
            expression=(code,),
        ) from exc
    return DateQuery(prefix, low, high)


def _token_value(raw: str) -> TokenQuery:
    if "|" not in raw:
        return TokenQuery(None, raw)
    system, _, code = raw.partition("|")
    return TokenQuery(system, code or None)


def _reference_value(
    parameter: SearchParameter, modifier: str | None, raw: str, local_base: str | None
) -> ReferenceQuery:
    parsed = parse_reference(raw, local_base=local_base)
    if parsed is not None:
        if modifier and modifier != parsed.resource_type:
            raise BadRequest(
                f"'{parameter.code}:{modifier}' does not match a {parsed.resource_type} reference",
                expression=(parameter.code,),
            )
        return ReferenceQuery(parsed.resource_type, parsed.id, parsed.base or "")
    if is_valid_id(raw):
        target = modifier or (parameter.targets[0] if len(parameter.targets) == 1 else None)
        return ReferenceQuery(target, raw, "")
    raise BadRequest(
        f"'{parameter.code}' takes a reference: Type/id, an id, or an absolute URL",
        expression=(parameter.code,),
    )


# Result parameters: http://hl7.org/fhir/R4/search.html#return


def _count(request: SearchRequest, name: str, raw: str, max_count: int, lenient: bool) -> None:
    request.count = min(_non_negative(name, raw), max_count)


def _offset(request: SearchRequest, name: str, raw: str, max_count: int, lenient: bool) -> None:
    request.offset = _non_negative(name, raw)


def _non_negative(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a whole number", expression=(name,))
    return int(raw)


def _total(request: SearchRequest, name: str, raw: str, max_count: int, lenient: bool) -> None:
    if raw not in ("none", "estimate", "accurate"):
        raise BadRequest("_total must be none, estimate or accurate", expression=(name,))
    request.total = raw  # type: ignore[assignment]


def _summary(request: SearchRequest, name: str, raw: str, max_count: int, lenient: bool) -> None:
    if raw == "count":
        request.summary_count = True
    elif raw != "false":
        raise BadRequest("_summary supports count and false", expression=(name,))


def _sort(request: SearchRequest, name: str, raw: str, max_count: int, lenient: bool) -> None:
    known = parameters_for(request.resource_type)
    for item in raw.split(","):
        descending = item.startswith("-")
        code = item.removeprefix("-")
        parameter = known.get(code)
        if parameter is None or parameter.type not in ("date", "last-updated", "id"):
            raise BadRequest(
                f"Cannot sort {request.resource_type} by '{code}'; sort by _lastUpdated, _id or "
                "a date parameter",
                expression=(name,),
            )
        request.sort.append(SortKey(parameter, descending))


def _include(request: SearchRequest, name: str, raw: str, max_count: int, lenient: bool) -> None:
    reverse = name.startswith("_revinclude")
    if name not in ("_include", "_revinclude"):
        raise BadRequest(f"{name} (iterate) is not supported", expression=(name,))
    source, _, rest = raw.partition(":")
    code, _, target = rest.partition(":")
    parameter = parameters_for(source).get(code) if source in RESOURCE_TYPES else None
    if parameter is None or parameter.type != "reference":
        raise BadRequest(
            f"{name} takes SourceType:reference-parameter[:TargetType]", expression=(name,)
        )
    if not reverse and source != request.resource_type:
        raise BadRequest(
            f"_include must start with the searched type {request.resource_type}",
            expression=(name,),
        )
    if target and target not in RESOURCE_TYPES:
        raise BadRequest(f"Unknown target type in {name}", expression=(name,))
    include = Include(source, parameter, target or None)
    (request.revincludes if reverse else request.includes).append(include)


_RESULT_PARAMETERS = {
    "_count": _count,
    "_offset": _offset,
    "_total": _total,
    "_summary": _summary,
    "_sort": _sort,
    "_include": _include,
    "_revinclude": _include,
}
