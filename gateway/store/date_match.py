"""Date search prefixes as SQL: a stored ``[low, high]`` range against a queried one; and
the cast that types a column comparison as a condition.

Spec: http://hl7.org/fhir/R4/search.html#prefix
"""

from typing import Any, cast

from sqlalchemy import ColumnElement, and_, false, not_, or_

from conformance.search_request import DateQuery


def date_match(low: Any, high: Any, value: DateQuery) -> ColumnElement[bool]:
    """Range semantics of search.html#prefix: compare the resource's range with the value's."""
    within = and_(low >= value.low, high <= value.high)
    prefix = value.prefix
    if prefix == "eq":
        return within
    if prefix == "ne":
        return not_(within)
    if prefix == "gt":
        return as_condition(high > value.high)
    if prefix == "lt":
        return as_condition(low < value.low)
    if prefix == "ge":
        return or_(high > value.high, within)
    if prefix == "le":
        return or_(low < value.low, within)
    if prefix == "sa":
        return as_condition(low > value.high)
    if prefix == "eb":
        return as_condition(high < value.low)
    if prefix == "ap":  # overlap, widened by a tenth of the value's width or one day
        margin = max((value.high - value.low) // 10, 86_400_000_000)
        return and_(low <= value.high + margin, high >= value.low - margin)
    return false()


def as_condition(expression: Any) -> ColumnElement[bool]:
    """Column comparisons on ``Table.c`` are typed Any; say what they are."""
    return cast(ColumnElement[bool], expression)
