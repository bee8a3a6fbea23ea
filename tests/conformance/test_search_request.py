from datetime import UTC, datetime, timedelta

import pytest

from conformance.errors import BadRequest, UnknownSearchParameter
from conformance.fhir_time import MAX_US
from conformance.search_request import (
    ChainQuery,
    Criterion,
    DateQuery,
    ReferenceQuery,
    SearchRequest,
    TokenQuery,
    parse_search,
)

LOCAL_BASE = "https://gateway.socialcare.example.org/fhir"
EHR_BASE = "https://ehr.mercyhospital.example.org/fhir"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(*parts: int) -> int:
    return (datetime(*parts, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def search(resource_type: str, *pairs: tuple[str, str], lenient: bool = False) -> SearchRequest:
    return parse_search(resource_type, list(pairs), local_base=LOCAL_BASE, lenient=lenient)


def only(request: SearchRequest) -> Criterion:
    assert len(request.criteria) == 1
    return request.criteria[0]


# Tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("requested", TokenQuery(None, "requested")),
        (
            "http://hl7.org/fhir/CodeSystem/task-code|fulfill",
            TokenQuery("http://hl7.org/fhir/CodeSystem/task-code", "fulfill"),
        ),
        ("|fulfill", TokenQuery("", "fulfill")),
        (
            "http://hl7.org/fhir/CodeSystem/task-code|",
            TokenQuery("http://hl7.org/fhir/CodeSystem/task-code", None),
        ),
    ],
)
def test_parse_search__token_forms(raw: str, expected: TokenQuery) -> None:
    criterion = only(search("Task", ("code", raw)))

    assert criterion.parameter.code == "code"
    assert criterion.modifier is None
    assert criterion.values == (expected,)


def test_parse_search__comma_separated_values_are_alternatives() -> None:
    criterion = only(search("Task", ("status", "requested,accepted,in-progress")))

    assert criterion.values == (
        TokenQuery(None, "requested"),
        TokenQuery(None, "accepted"),
        TokenQuery(None, "in-progress"),
    )


def test_parse_search__escaped_comma_is_part_of_the_value() -> None:
    criterion = only(search("Patient", ("name", r"Rivera\,Denise")))

    assert criterion.values == ("Rivera,Denise",)


def test_parse_search__repeated_parameter_gives_two_criteria() -> None:
    request = search("Task", ("status", "requested"), ("status", "accepted"))

    assert [c.values for c in request.criteria] == [
        (TokenQuery(None, "requested"),),
        (TokenQuery(None, "accepted"),),
    ]


@pytest.mark.parametrize("raw", ["", ",", "requested,", ",requested", "a,,b"])
def test_parse_search__empty_value_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", ("status", raw))

    assert caught.value.status == 400
    assert caught.value.expression == ("status",)


# References


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("patient", "Patient/pat-1001", ReferenceQuery("Patient", "pat-1001", "")),
        ("patient", "pat-1001", ReferenceQuery("Patient", "pat-1001", "")),
        ("subject", "pat-1001", ReferenceQuery(None, "pat-1001", "")),
        ("subject:Patient", "pat-1001", ReferenceQuery("Patient", "pat-1001", "")),
        ("subject:Group", "g-1", ReferenceQuery("Group", "g-1", "")),
        (
            "owner",
            "Organization/cbo-eastside-food",
            ReferenceQuery("Organization", "cbo-eastside-food", ""),
        ),
        (
            "owner",
            f"{LOCAL_BASE}/Organization/cbo-eastside-food",
            ReferenceQuery("Organization", "cbo-eastside-food", ""),
        ),
        (
            "focus",
            f"{EHR_BASE}/ServiceRequest/sr-food-2001",
            ReferenceQuery("ServiceRequest", "sr-food-2001", EHR_BASE),
        ),
        ("part-of", "task-1", ReferenceQuery("Task", "task-1", "")),
        ("focus", "ServiceRequest/sr-1/_history/2", ReferenceQuery("ServiceRequest", "sr-1", "")),
    ],
)
def test_parse_search__reference_forms(name: str, raw: str, expected: ReferenceQuery) -> None:
    criterion = only(search("Task", (name, raw)))

    assert criterion.values == (expected,)


def test_parse_search__reference_modifier_must_match_the_type_given() -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", ("subject:Group", "Patient/pat-1001"))

    assert caught.value.status == 400
    assert caught.value.expression == ("subject",)


@pytest.mark.parametrize(
    "raw", ["not a reference", "patient/1", "urn:uuid:6c2a1d2e-0f4b-4a51-9a7c-58a1f2b0f001", "#c1"]
)
def test_parse_search__malformed_reference_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", ("owner", raw))

    assert caught.value.status == 400
    assert caught.value.expression == ("owner",)


# Dates


@pytest.mark.parametrize("prefix", ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
def test_parse_search__date_prefixes(prefix: str) -> None:
    criterion = only(search("Task", ("authored-on", f"{prefix}2025-03-10")))

    assert criterion.values == (DateQuery(prefix, us(2025, 3, 10), us(2025, 3, 11) - 1),)  # type: ignore[arg-type]


def test_parse_search__date_without_prefix_means_eq() -> None:
    criterion = only(search("Task", ("authored-on", "2025-03")))

    assert criterion.values == (DateQuery("eq", us(2025, 3, 1), us(2025, 4, 1) - 1),)


def test_parse_search__last_updated_takes_an_instant_with_offset() -> None:
    criterion = only(search("Task", ("_lastUpdated", "gt2025-03-10T14:05:00+05:00")))

    start = us(2025, 3, 10, 9, 5)
    assert criterion.values == (DateQuery("gt", start, start + 999_999),)


@pytest.mark.parametrize("raw", ["yesterday", "xx2025-03-10", "gt", "2025-02-30", "ge2025-13"])
def test_parse_search__invalid_date_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", ("authored-on", raw))

    assert caught.value.status == 400
    assert caught.value.expression == ("authored-on",)


def test_parse_search__date_range_as_two_criteria() -> None:
    request = search("Task", ("authored-on", "ge2025-03-01"), ("authored-on", "lt2025-04-01"))

    assert [c.values[0].prefix for c in request.criteria] == ["ge", "lt"]  # type: ignore[union-attr]


# _id


def test_parse_search__id_list() -> None:
    criterion = only(search("Task", ("_id", "task-ref-5001,task-2")))

    assert criterion.values == ("task-ref-5001", "task-2")


@pytest.mark.parametrize("raw", ["has space", "a/b", "x" * 65])
def test_parse_search__invalid_id_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", ("_id", raw))

    assert caught.value.expression == ("_id",)


# Modifiers


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("false", False)])
def test_parse_search__missing_modifier(raw: str, value: bool) -> None:
    criterion = only(search("Task", ("owner:missing", raw)))

    assert criterion.modifier == "missing"
    assert criterion.values == (value,)


def test_parse_search__missing_takes_only_true_or_false() -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", ("owner:missing", "yes"))

    assert caught.value.status == 400
    assert caught.value.expression == ("owner",)


def test_parse_search__not_modifier_on_token() -> None:
    criterion = only(search("Task", ("status:not", "completed")))

    assert criterion.modifier == "not"
    assert criterion.values == (TokenQuery(None, "completed"),)


@pytest.mark.parametrize("modifier", ["exact", "contains"])
def test_parse_search__string_modifiers(modifier: str) -> None:
    criterion = only(search("Patient", (f"name:{modifier}", "Rivéra")))

    assert criterion.modifier == modifier
    assert criterion.values == ("Rivéra",)


@pytest.mark.parametrize(
    ("resource_type", "name"),
    [
        ("Task", "status:exact"),
        ("Task", "status:contains"),
        ("Task", "status:text"),
        ("Task", "authored-on:not"),
        ("Task", "owner:not"),
        ("Task", "owner:identifier"),
        ("Task", "owner:NotAType"),
        ("Patient", "name:not"),
        ("Task", "_id:missing"),
        ("Task", "_lastUpdated:missing"),
    ],
)
def test_parse_search__unsupported_modifier_is_a_bad_request(resource_type: str, name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search(resource_type, (name, "x"))

    assert caught.value.status == 400
    assert caught.value.expression == (name,)


# Unknown and chained parameters


def test_parse_search__unknown_parameter_is_a_400_naming_it() -> None:
    with pytest.raises(UnknownSearchParameter) as caught:
        search("Task", ("status", "requested"), ("colour", "blue"))

    assert caught.value.status == 400
    assert caught.value.issue_code == "not-supported"
    assert caught.value.expression == ("colour",)


@pytest.mark.parametrize("name", ["_lastupdated", "Status", "_has:Task:focus:status", "_elements"])
def test_parse_search__names_are_case_sensitive_and_unsupported_ones_rejected(name: str) -> None:
    with pytest.raises(UnknownSearchParameter):
        search("Task", (name, "x"))


def test_parse_search__parameter_of_another_type_is_unknown() -> None:
    with pytest.raises(UnknownSearchParameter):
        search("Task", ("birthdate", "2025"))


def test_parse_search__lenient_skips_unknown_parameters_and_leaves_them_out_of_links() -> None:
    request = search("Task", ("colour", "blue"), ("status", "requested"), lenient=True)

    assert [c.parameter.code for c in request.criteria] == ["status"]
    assert request.echoed == [("status", "requested")]
    assert "colour" not in request.query_string()


def test_parse_search__lenient_still_rejects_bad_values_of_known_parameters() -> None:
    with pytest.raises(BadRequest):
        search("Task", ("authored-on", "yesterday"), lenient=True)


@pytest.mark.parametrize(
    "name", ["focus.status", "status.code", "patient.name.family", "patient.colour"]
)
def test_parse_search__chains_that_cannot_be_followed_are_rejected(name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", (name, "x"))

    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("name", "target", "inner"),
    [
        ("patient.name", "Patient", "name"),
        ("owner:Organization.name", "Organization", "name"),
        ("focus:ServiceRequest.category", "ServiceRequest", "category"),
    ],
)
def test_parse_search__one_level_chains_name_their_target(
    name: str, target: str, inner: str
) -> None:
    request = search("Task", (name, "x"))

    (criterion,) = request.criteria
    assert criterion.modifier == "chain"
    chain = criterion.values[0]
    assert isinstance(chain, ChainQuery)
    assert (chain.target_type, chain.criterion.parameter.code) == (target, inner)
    assert request.echoed == [(name, "x")]


# _count, _offset


def test_parse_search__count_defaults() -> None:
    assert search("Task").count == 50
    assert parse_search("Task", [], local_base=None, default_count=20).count == 20


@pytest.mark.parametrize(("raw", "count"), [("0", 0), ("10", 10), ("1000", 1000), ("5000", 1000)])
def test_parse_search__count_is_clamped_to_the_maximum(raw: str, count: int) -> None:
    assert search("Task", ("_count", raw)).count == count


def test_parse_search__count_clamps_to_a_custom_maximum() -> None:
    request = parse_search("Task", [("_count", "500")], local_base=None, max_count=100)

    assert request.count == 100


@pytest.mark.parametrize("name", ["_count", "_offset"])
@pytest.mark.parametrize("raw", ["-1", "ten", "1.5", ""])
def test_parse_search__count_and_offset_must_be_whole_numbers(name: str, raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", (name, raw))

    assert caught.value.expression == (name,)


# _sort


def test_parse_search__sort_keys_in_order() -> None:
    request = search("Task", ("_sort", "-_lastUpdated,authored-on,_id"))

    assert [(k.parameter.code, k.descending) for k in request.sort] == [
        ("_lastUpdated", True),
        ("authored-on", False),
        ("_id", False),
    ]


@pytest.mark.parametrize("raw", ["status", "owner", "-priority", "colour", "", "birthdate"])
def test_parse_search__sort_only_by_dates_and_id(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", ("_sort", raw))

    assert caught.value.status == 400
    assert caught.value.expression == ("_sort",)


# _include, _revinclude


def test_parse_search__include() -> None:
    request = search("Task", ("_include", "Task:focus"), ("_include", "Task:output:Procedure"))

    assert [(i.source_type, i.parameter.code, i.target_type) for i in request.includes] == [
        ("Task", "focus", None),
        ("Task", "output", "Procedure"),
    ]
    assert request.revincludes == []


def test_parse_search__revinclude_from_another_type() -> None:
    request = search("ServiceRequest", ("_revinclude", "Task:focus"))

    assert [(i.source_type, i.parameter.code) for i in request.revincludes] == [("Task", "focus")]
    assert request.includes == []


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("_include", "ServiceRequest:subject"),  # not the searched type
        ("_include", "Task:status"),  # not a reference parameter
        ("_include", "Task:nope"),
        ("_include", "Task"),
        ("_include", "Task:*"),
        ("_include", "Nope:focus"),
        ("_include", "Task:focus:Nope"),
        ("_include:iterate", "Task:focus"),
        ("_revinclude:iterate", "Task:focus"),
        ("_revinclude", "Task:status"),
    ],
)
def test_parse_search__invalid_include_is_a_bad_request(name: str, raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", (name, raw))

    assert caught.value.status == 400
    assert caught.value.expression == (name,)


# _total, _summary


@pytest.mark.parametrize("raw", ["none", "estimate", "accurate"])
def test_parse_search__total(raw: str) -> None:
    assert search("Task", ("_total", raw)).total == raw


def test_parse_search__total_defaults_to_accurate_and_rejects_others() -> None:
    assert search("Task").total == "accurate"
    with pytest.raises(BadRequest) as caught:
        search("Task", ("_total", "exact"))
    assert caught.value.expression == ("_total",)


def test_parse_search__summary_count() -> None:
    assert search("Task", ("_summary", "count")).summary_count is True
    assert search("Task", ("_summary", "false")).summary_count is False
    assert search("Task").summary_count is False


@pytest.mark.parametrize("raw", ["true", "text", "data"])
def test_parse_search__unsupported_summary_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search("Task", ("_summary", raw))

    assert caught.value.expression == ("_summary",)


def test_parse_search__format_and_pretty_are_ignored() -> None:
    request = search("Task", ("_format", "json"), ("_pretty", "true"))

    assert request.criteria == []
    assert request.echoed == []


# Links


def test_query_string__echoes_understood_parameters_with_paging() -> None:
    request = search(
        "Task",
        ("owner", "Organization/cbo-eastside-food"),
        ("status", "requested,accepted"),
        ("_lastUpdated", "gt2025-03-10T14:05:00+05:00"),
        ("_sort", "-_lastUpdated"),
        ("_include", "Task:focus"),
        ("_count", "10"),
        ("_offset", "20"),
        ("_format", "json"),
        ("colour", "blue"),
        lenient=True,
    )

    assert request.offset == 20
    assert request.query_string() == (
        "owner=Organization%2Fcbo-eastside-food&status=requested%2Caccepted"
        "&_lastUpdated=gt2025-03-10T14%3A05%3A00%2B05%3A00&_sort=-_lastUpdated"
        "&_include=Task%3Afocus&_count=10&_offset=20"
    )
    assert request.query_string(offset=30).endswith("&_count=10&_offset=30")


def test_query_string__of_an_empty_search_has_paging_only() -> None:
    assert search("Task").query_string() == "_count=50&_offset=0"


def test_query_string__uses_the_clamped_count() -> None:
    assert search("Task", ("_count", "5000")).query_string() == "_count=1000&_offset=0"


@pytest.mark.parametrize("raw", ["9999", "ge9999-12", "lt9999-12-31"])
def test_parse_search__date_in_the_last_fhir_year_is_accepted(raw: str) -> None:
    criterion = only(search("Patient", ("birthdate", raw)))

    assert criterion.values[0].high == MAX_US  # type: ignore[union-attr]
