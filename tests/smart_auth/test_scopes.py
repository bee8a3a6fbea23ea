"""The scope grammar and coverage rules (pure): smart.md §5 row 22 as a table."""

import pytest

from conformance.access import Grant
from smart_auth.scopes import MalformedScope, grants_of, narrow, parse_scope, parse_scopes

SOCIAL = "http://terminology.hl7.org/CodeSystem/observation-category|social-history"


@pytest.mark.parametrize(
    ("text", "letters"),
    [
        ("patient/Task.read", "rs"),
        ("patient/Task.write", "cdu"),
        ("patient/Task.*", "cdrsu"),
        ("system/Task.cruds", "cdrsu"),
        ("user/*.rs", "rs"),
        ("patient/Observation.s", "s"),
        ("system/Task.cud", "cdu"),
        ("system/Task.rd", "dr"),
    ],
)
def test_parse__letters(text, letters) -> None:
    resource = parse_scope(text).resource
    assert resource is not None
    assert "".join(sorted(resource.letters)) == letters


@pytest.mark.parametrize(
    "text",
    [
        "patient/Task.dus",
        "patient/Task.sr",
        "patient/Task.rr",
        "patient/Task.",
        "patient/Task.x",
        "*/*.read",
        "group/Task.rs",
        "patient/Unicorn.rs",
        "patient/task.rs",
        "patient/Task.read?status=requested",
        "patient/Task.rs?status",
        "patient/Task.rs?status=",
        "patient/Task.rs?code:in=x",
        "patient/Task.rs?subject.name=x",
        "patient/Task.rs?_filter=x",
        "launch/location",
        "email",
    ],
)
def test_parse__malformed(text) -> None:
    with pytest.raises(MalformedScope):
        parse_scope(text)


def test_parse__constraints_are_decoded_and_sorted() -> None:
    resource = parse_scope(f"patient/Observation.rs?status=final&category={SOCIAL}").resource
    assert resource is not None
    assert resource.constraints == (("category", SOCIAL), ("status", "final"))
    encoded = parse_scope("patient/Observation.rs?category=a%7Cb").resource
    assert encoded is not None
    assert encoded.constraints == (("category", "a|b"),)


@pytest.mark.parametrize(
    ("allowed", "requested", "granted"),
    [
        ("patient/*.rs", "patient/Patient.rs", "patient/Patient.rs"),
        ("patient/*.rs", "patient/Patient.cruds", ""),
        ("system/Task.*", "system/Task.cruds", "system/Task.cruds"),
        ("system/Task.cruds", "system/Task.*", "system/Task.*"),
        ("patient/Task.rs", "patient/Task.rs?status=requested", "patient/Task.rs?status=requested"),
        ("patient/Task.rs?status=requested", "patient/Task.rs", ""),
        ("patient/Task.rs", "user/Task.rs", ""),
        ("patient/Task.rs", "patient/*.rs", ""),
        ("patient/Task.read", "patient/Task.s", "patient/Task.s"),
        ("launch openid", "launch fhirUser openid", "launch openid"),
    ],
)
def test_narrow(allowed, requested, granted) -> None:
    result = narrow(parse_scopes(requested), parse_scopes(allowed))
    assert " ".join(scope.text for scope in result) == granted


def test_grants_of__skips_context_scopes() -> None:
    assert grants_of("launch openid patient/Task.read offline_access") == (
        Grant("patient", "Task", frozenset({"r", "s"})),
    )


def test_parse_scopes__deduplicates_and_ignores_extra_spaces() -> None:
    assert [s.text for s in parse_scopes("openid  openid patient/Task.rs ")] == [
        "openid",
        "patient/Task.rs",
    ]
