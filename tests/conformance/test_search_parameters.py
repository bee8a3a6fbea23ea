import pytest

from conformance.resource_types import CORE_TYPES, RESOURCE_TYPES
from conformance.search_parameters import (
    COMMON,
    SEARCH_PARAMETERS,
    SearchParameter,
    indexed_parameters,
    parameters_for,
)

_COMMON_CODES = {"_id", "_lastUpdated", "_profile"}


@pytest.mark.parametrize("resource_type", sorted(CORE_TYPES))
def test_search_parameters__every_referral_type_has_a_table(resource_type: str) -> None:
    assert resource_type in SEARCH_PARAMETERS


@pytest.mark.parametrize("resource_type", ["Encounter", "Device", "CarePlan"])
def test_search_parameters__other_stored_types_search_by_the_common_ones(
    resource_type: str,
) -> None:
    assert resource_type in RESOURCE_TYPES
    assert set(parameters_for(resource_type)) == _COMMON_CODES


@pytest.mark.parametrize("resource_type", sorted(SEARCH_PARAMETERS))
def test_search_parameters__codes_are_unique_per_type(resource_type: str) -> None:
    codes = [p.code for p in SEARCH_PARAMETERS[resource_type]]

    assert len(codes) == len(set(codes))
    assert not set(codes) & _COMMON_CODES


@pytest.mark.parametrize(
    "parameter",
    [p for params in SEARCH_PARAMETERS.values() for p in params] + list(COMMON),
    ids=lambda p: p.code,
)
def test_search_parameters__definitions_are_canonical_urls(parameter: SearchParameter) -> None:
    assert parameter.definition.startswith("http://hl7.org/fhir/")


@pytest.mark.parametrize(
    ("resource_type", "code", "type_", "paths"),
    [
        ("Task", "status", "token", ("status",)),
        ("Task", "owner", "reference", ("owner",)),
        ("Task", "focus", "reference", ("focus",)),
        ("Task", "output", "reference", ("output.valueReference",)),
        ("Task", "patient", "reference", ("for",)),
        ("Task", "authored-on", "date", ("authoredOn",)),
        ("ServiceRequest", "supporting-info", "reference", ("supportingInfo",)),
        ("ServiceRequest", "occurrence", "date", ("occurrenceDateTime", "occurrencePeriod")),
        ("Procedure", "based-on", "reference", ("basedOn",)),
        ("Procedure", "performer", "reference", ("performer.actor",)),
        ("Patient", "name", "string", ("name",)),
        ("Patient", "birthdate", "date", ("birthDate",)),
    ],
)
def test_parameters_for__gravity_parameters(
    resource_type: str, code: str, type_: str, paths: tuple[str, ...]
) -> None:
    parameter = parameters_for(resource_type)[code]

    assert (parameter.type, parameter.paths) == (type_, paths)


def test_parameters_for__patient_parameters_target_patients_only() -> None:
    assert parameters_for("Task")["patient"].targets == ("Patient",)
    assert parameters_for("Task")["subject"].targets == ()


def test_parameters_for__includes_the_common_parameters() -> None:
    assert set(parameters_for("Task")) >= _COMMON_CODES
    assert set(parameters_for("NotAType")) == _COMMON_CODES


def test_indexed_parameters__only_parameters_with_paths() -> None:
    codes = {p.code for p in indexed_parameters("Task")}

    assert "_profile" in codes
    assert not {"_id", "_lastUpdated"} & codes
    assert {p.code for p in indexed_parameters("NotAType")} == {"_profile"}
