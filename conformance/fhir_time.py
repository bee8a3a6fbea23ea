"""FHIR date, dateTime and instant values as UTC ranges in epoch microseconds (pure).

A FHIR date is a range as wide as its precision: ``2025-03`` covers the whole month
(http://hl7.org/fhir/R4/search.html#date). Both the search index and search values use these
ranges, so comparisons are integer comparisons on any database. Values without a time zone are
taken as UTC.
"""

import calendar
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

_DATE_RE = re.compile(
    r"^(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<hour>\d{2}):(?P<minute>\d{2})(:(?P<second>\d{2})(\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = -62135596800 * 1_000_000  # 0001-01-01T00:00:00Z
MAX_US = 253402300799 * 1_000_000 + 999_999  # 9999-12-31T23:59:59.999999Z


class InvalidDate(ValueError):
    """The text is not a FHIR date, dateTime or instant."""


def to_epoch_us(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def date_range(text: str) -> tuple[int, int]:
    """The ``(low, high)`` microsecond range a FHIR date/dateTime/instant string covers."""
    match = _DATE_RE.match(text)
    if not match:
        raise InvalidDate(text)
    try:
        return _range_from_match(match)
    except (ValueError, OverflowError) as exc:  # month 13, day 31 in April, tz past 9999
        raise InvalidDate(text) from exc


def _range_from_match(match: re.Match[str]) -> tuple[int, int]:
    year = int(match["year"])
    if match["month"] is None:
        start = datetime(year, 1, 1, tzinfo=UTC)
        return to_epoch_us(start), _end(start, lambda: datetime(year + 1, 1, 1, tzinfo=UTC))
    month = int(match["month"])
    if match["day"] is None:
        start = datetime(year, month, 1, tzinfo=UTC)
        days = calendar.monthrange(year, month)[1]
        return to_epoch_us(start), _end(start, lambda: start + timedelta(days=days))
    day = int(match["day"])
    if match["hour"] is None:
        start = datetime(year, month, day, tzinfo=UTC)
        return to_epoch_us(start), _end(start, lambda: start + timedelta(days=1))
    tz: tzinfo = UTC
    if match["tz"] and match["tz"] != "Z":
        sign = 1 if match["tz"][0] == "+" else -1
        hours, minutes = int(match["tz"][1:3]), int(match["tz"][4:6])
        tz = _offset(sign * (hours * 60 + minutes))
    hour, minute = int(match["hour"]), int(match["minute"])
    if match["second"] is None:
        start = datetime(year, month, day, hour, minute, tzinfo=tz)
        return to_epoch_us(start), _end(start, lambda: start + timedelta(minutes=1))
    second = int(match["second"])
    if second > 60:
        raise ValueError("seconds run from 00 to 60 (a leap second)")
    second = min(second, 59)  # a leap second is folded into :59
    fraction = match["fraction"] or ""
    micro = int((fraction + "000000")[:6]) if fraction else 0
    start = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    low = to_epoch_us(start)
    if len(fraction) >= 6:
        return low, low
    width = 10 ** (6 - len(fraction))  # microseconds covered by the last digit given
    return low, min(low + width - 1, MAX_US)


def _end(start: datetime, following: Callable[[], datetime]) -> int:
    """The last microsecond before ``following()``, or the end of time in year 9999."""
    try:
        return to_epoch_us(following()) - 1
    except (OverflowError, ValueError):
        return MAX_US


def _offset(minutes: int) -> tzinfo:
    return timezone(timedelta(minutes=minutes))


@lru_cache(maxsize=256)
def format_instant(value: int) -> str:
    """Render epoch microseconds as a FHIR instant in UTC with microseconds. Cached: a
    write renders its one instant a dozen times (meta, response, Provenance, events)."""
    moment = from_epoch_us(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
