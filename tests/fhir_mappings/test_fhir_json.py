from datetime import UTC, datetime, timedelta, timezone

import pytest

from fhir_mappings._fhir_json import absolute, parse_datetime, same_resource, server_base

EHR = "https://ehr.example.org/fhir"


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("Patient/1", f"{EHR}/Patient/1", True),
        (f"{EHR}/Patient/1", f"{EHR}/Patient/1/_history/3", True),
        (f"{EHR}/Patient/1", "https://other.example.org/fhir/Patient/1", False),
        ("Patient/1", "Patient/2", False),
        ("Patient/1", "Group/1", False),
        ("urn:uuid:5f0c", "urn:uuid:5f0c", True),
        ("#contained", "Patient/1", False),
        (None, "Patient/1", False),
    ],
)
def test_same_resource(left, right, same):
    assert same_resource(left, right) is same


def test_absolute__only_relative_references_move_to_the_base():
    assert absolute({"reference": "Goal/g1", "display": "x"}, EHR) == {
        "reference": f"{EHR}/Goal/g1",
        "display": "x",
    }
    assert absolute({"reference": f"{EHR}/Goal/g1"}, "https://b") == {"reference": f"{EHR}/Goal/g1"}
    assert absolute({"reference": "urn:uuid:1"}, EHR) == {"reference": "urn:uuid:1"}
    assert absolute({"display": "no reference"}, EHR) == {"display": "no reference"}
    assert absolute({"reference": "Goal/g1"}, None) == {"reference": "Goal/g1"}
    assert server_base(f"{EHR}/ServiceRequest/1") == EHR
    assert server_base("ServiceRequest/1") is None


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("2025", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-03", datetime(2025, 3, 1, tzinfo=UTC)),
        ("2025-03-10", datetime(2025, 3, 10, tzinfo=UTC)),
        ("2025-03-10T14:06:00Z", datetime(2025, 3, 10, 14, 6, tzinfo=UTC)),
        (
            "2025-03-10T14:06:00.1234-05:00",
            datetime(2025, 3, 10, 14, 6, 0, 123400, tzinfo=timezone(timedelta(hours=-5))),
        ),
        ("March 10", None),
        (None, None),
    ],
)
def test_parse_datetime(value, moment):
    assert parse_datetime(value) == moment
