"""Does one resource match search criteria? Evaluated in memory, with the index's own values.

Used where SQL cannot be: a read checked against a token's ``?param=value`` constraints and
patient compartment, and a write checked before it is stored. Values come from
``conformance.search_index``, so a resource matches here exactly when a search would find it.
"""

from collections.abc import Iterable
from typing import Any

from conformance.fhir_time import InvalidDate, date_range
from conformance.search_index import (
    IndexEntries,
    extract_index,
    normalise_string,
)
from conformance.search_request import Criterion, DateQuery, ReferenceQuery, TokenQuery


def matches_all(
    resource: dict[str, Any], criteria: Iterable[Criterion], *, local_base: str | None
) -> bool:
    entries = extract_index(resource, local_base=local_base)
    return all(_matches(resource, entries, criterion) for criterion in criteria)


def matches_criterion(
    resource: dict[str, Any], entries: IndexEntries, criterion: Criterion
) -> bool:
    """One criterion, against index values already extracted from ``resource``."""
    return _matches(resource, entries, criterion)


def _matches(resource: dict[str, Any], entries: IndexEntries, criterion: Criterion) -> bool:
    parameter = criterion.parameter
    if criterion.modifier == "chain":
        return False  # needs the referenced resource: not evaluable from this one alone
    if parameter.type == "id":
        return resource.get("id") in criterion.values
    if parameter.type == "last-updated":
        stamp = (resource.get("meta") or {}).get("lastUpdated")
        try:
            low, high = date_range(str(stamp))
        except InvalidDate:
            return False
        return any(_date(low, high, v) for v in criterion.values if isinstance(v, DateQuery))
    code = parameter.code
    if criterion.modifier == "missing":
        present = _present(entries, parameter.type, code)
        return present is not criterion.values[0]
    hit = any(
        _value(entries, parameter.type, code, criterion.modifier, v) for v in criterion.values
    )
    return not hit if criterion.modifier == "not" else hit


def _present(entries: IndexEntries, kind: str, code: str) -> bool:
    rows: dict[str, list[Any]] = {
        "token": list(entries.tokens),
        "uri": list(entries.tokens),
        "reference": list(entries.references),
        "date": list(entries.dates),
        "string": list(entries.strings),
    }
    return any(row.param == code for row in rows[kind])


def _value(entries: IndexEntries, kind: str, code: str, modifier: str | None, value: Any) -> bool:
    if kind == "token" and isinstance(value, TokenQuery):
        return any(
            t.param == code
            and (value.code is None or t.code == value.code)
            and (value.system is None or t.system == value.system)
            for t in entries.tokens
        )
    if kind == "uri":
        return any(t.param == code and t.code == value for t in entries.tokens)
    if kind == "reference" and isinstance(value, ReferenceQuery):
        return any(
            r.param == code
            and r.target_id == value.target_id
            and r.target_base == value.target_base
            and (value.target_type is None or r.target_type == value.target_type)
            for r in entries.references
        )
    if kind == "date" and isinstance(value, DateQuery):
        return any(d.param == code and _date(d.low, d.high, value) for d in entries.dates)
    if kind == "string":
        text = str(value)
        wanted = normalise_string(text)
        for s in entries.strings:
            if s.param != code:
                continue
            if modifier == "exact" and s.exact == text:
                return True
            if modifier == "contains" and wanted in s.normalised:
                return True
            if modifier is None and s.normalised.startswith(wanted):
                return True
    return False


def _date(low: int, high: int, value: DateQuery) -> bool:
    """The prefix semantics of ``gateway.store.search_query._date_match``, in Python."""
    within = low >= value.low and high <= value.high
    prefix = value.prefix
    if prefix == "eq":
        return within
    if prefix == "ne":
        return not within
    if prefix == "gt":
        return high > value.high
    if prefix == "lt":
        return low < value.low
    if prefix == "ge":
        return high > value.high or within
    if prefix == "le":
        return low < value.low or within
    if prefix == "sa":
        return low > value.high
    if prefix == "eb":
        return high < value.low
    margin = max((value.high - value.low) // 10, 86_400_000_000)
    return low <= value.high + margin and high >= value.low - margin
