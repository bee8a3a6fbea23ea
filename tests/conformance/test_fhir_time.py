from datetime import UTC, datetime, timedelta, timezone

import pytest

from conformance.fhir_time import MAX_US, MIN_US, InvalidDate, date_range, format_instant

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def us(*parts: int, tz: timezone = UTC) -> int:
    """Epoch microseconds of a wall-clock moment, computed independently of the module."""
    return (datetime(*parts, tzinfo=tz) - _EPOCH) // _ONE_US


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2025", us(2025, 1, 1), us(2026, 1, 1) - 1),
        ("2025-03", us(2025, 3, 1), us(2025, 4, 1) - 1),
        ("2024-02", us(2024, 2, 1), us(2024, 3, 1) - 1),
        ("2025-02", us(2025, 2, 1), us(2025, 3, 1) - 1),
        ("2025-12", us(2025, 12, 1), us(2026, 1, 1) - 1),
        ("2025-03-10", us(2025, 3, 10), us(2025, 3, 11) - 1),
        ("2024-02-29", us(2024, 2, 29), us(2024, 3, 1) - 1),
        ("2025-03-10T14:05Z", us(2025, 3, 10, 14, 5), us(2025, 3, 10, 14, 6) - 1),
        ("2025-03-10T14:05:30Z", us(2025, 3, 10, 14, 5, 30), us(2025, 3, 10, 14, 5, 31) - 1),
        (
            "2025-03-10T14:05:30.5Z",
            us(2025, 3, 10, 14, 5, 30, 500_000),
            us(2025, 3, 10, 14, 5, 30, 600_000) - 1,
        ),
        (
            "2025-03-10T14:05:30.123Z",
            us(2025, 3, 10, 14, 5, 30, 123_000),
            us(2025, 3, 10, 14, 5, 30, 124_000) - 1,
        ),
        (
            "2025-03-10T14:05:30.123456Z",
            us(2025, 3, 10, 14, 5, 30, 123_456),
            us(2025, 3, 10, 14, 5, 30, 123_456),
        ),
        (
            "2025-03-10T14:05:30.123456789Z",
            us(2025, 3, 10, 14, 5, 30, 123_456),
            us(2025, 3, 10, 14, 5, 30, 123_456),
        ),
    ],
)
def test_date_range__covers_the_whole_precision(text: str, low: int, high: int) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize(
    ("text", "utc_start"),
    [
        ("2025-03-10T14:05:00-05:00", us(2025, 3, 10, 19, 5)),
        ("2025-03-10T14:05:00+05:30", us(2025, 3, 10, 8, 35)),
        ("2025-03-10T14:05:00+00:00", us(2025, 3, 10, 14, 5)),
        ("2025-03-10T14:05:00Z", us(2025, 3, 10, 14, 5)),
        ("2025-03-10T14:05:00", us(2025, 3, 10, 14, 5)),  # no zone: taken as UTC
        ("2025-12-31T22:00:00-05:00", us(2026, 1, 1, 3, 0)),  # crosses into the next year
    ],
)
def test_date_range__converts_time_zones_to_utc(text: str, utc_start: int) -> None:
    low, high = date_range(text)

    assert low == utc_start
    assert high == utc_start + 1_000_000 - 1


def test_date_range__minute_precision_with_offset_spans_one_minute() -> None:
    low, high = date_range("2025-03-10T09:30-05:00")

    assert (low, high) == (us(2025, 3, 10, 14, 30), us(2025, 3, 10, 14, 31) - 1)


def test_date_range__same_instant_in_two_zones_is_the_same_range() -> None:
    assert date_range("2025-03-21T16:42:37-05:00") == date_range("2025-03-21T21:42:37Z")


def test_date_range__leap_second_is_folded_into_the_59th_second() -> None:
    assert date_range("2016-12-31T23:59:60Z") == date_range("2016-12-31T23:59:59Z")


def test_date_range__first_representable_year_starts_at_min() -> None:
    assert date_range("0001")[0] == MIN_US


@pytest.mark.parametrize("text", ["9999", "9999-12", "9999-12-31", "9999-12-31T23:59Z"])
def test_date_range__last_representable_period_ends_at_max(text: str) -> None:
    # FHIR dates run to year 9999; the range of the last year/month/day/minute ends at MAX_US.
    low, high = date_range(text)

    assert low <= high == MAX_US


@pytest.mark.parametrize(
    "text",
    [
        "2025-13",
        "2025-00",
        "2025-02-30",
        "2025-02-29",
        "2025-04-31",
        "2025-03-00",
        "2025-03-10T24:00Z",
        "2025-03-10T14:60Z",
        "2025-03-10T14:05:00+24:00",
        "0000",
        "garbage",
        "",
        "25-03-10",
        "2025-3-10",
        "2025/03/10",
        "2025-03-10T14",
        "2025-03-10T14:05:00.Z",
        "2025-03-10T14:05:00.1234567890Z",
        "2025-03-10T14:05:00+0500",
        "2025-03-10 14:05:00Z",
        "2025-03-10Z",
        " 2025-03-10",
    ],
)
def test_date_range__rejects_what_is_not_a_fhir_date(text: str) -> None:
    with pytest.raises(InvalidDate):
        date_range(text)


@pytest.mark.parametrize("text", ["2025-03-10T14:05:61Z", "2025-03-10T14:05:99Z"])
def test_date_range__rejects_seconds_beyond_a_leap_second(text: str) -> None:
    # FHIR allows seconds 00-60 (60 only for a leap second); 61 and up are not a time.
    with pytest.raises(InvalidDate):
        date_range(text)


def test_invalid_date__is_a_value_error() -> None:
    assert issubclass(InvalidDate, ValueError)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (us(2025, 3, 10, 14, 5, 30, 123_456), "2025-03-10T14:05:30.123456Z"),
        (us(2025, 3, 10, 14, 5), "2025-03-10T14:05:00.000000Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
    ],
)
def test_format_instant__renders_utc_with_microseconds(value: int, text: str) -> None:
    assert format_instant(value) == text


@pytest.mark.parametrize(
    "value",
    [0, 1, 999_999, us(2025, 3, 21, 21, 42, 37, 1), us(2038, 1, 19, 3, 14, 8), -86_400_000_001],
)
def test_format_instant__round_trips_through_date_range(value: int) -> None:
    assert date_range(format_instant(value)) == (value, value)


def test_format_instant__of_an_offset_time_is_its_utc_instant() -> None:
    low, _ = date_range("2025-03-10T14:05:00-05:00")

    assert format_instant(low) == "2025-03-10T19:05:00.000000Z"
