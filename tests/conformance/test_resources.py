"""FHIR JSON shape rules (http://hl7.org/fhir/R4/json.html) that the R4 models let through."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.errors import BadRequest
from conformance.resources import json_shape_issues, validate_structure, well_shaped


def _patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Rivera"}], **extra}


@pytest.mark.parametrize(
    ("extra", "expression"),
    [
        ({"gender": None}, "Patient.gender"),
        ({"gender": ""}, "Patient.gender"),
        ({"telecom": []}, "Patient.telecom"),
        ({"telecom": [{}]}, "Patient.telecom[0]"),
        ({"name": [{"family": "Rivera", "given": [None, None]}]}, "Patient.name[0].given"),
    ],
)
def test_validate_structure__nulls_and_empties_are_400_with_their_path(
    extra: dict[str, Any], expression: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        validate_structure(_patient(**extra))
    assert [issue.expression for issue in refused.value.issues] == [(expression,)]


def test_validate_structure__a_null_aligned_with_an_element_twin_is_allowed() -> None:
    validate_structure(_patient(name=[{"given": ["Ana", None], "_given": [None, {"id": "g2"}]}]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "_a"]), children, max_size=3)
    ),
    max_leaves=12,
)


@given(json_values)
def test_well_shaped__agrees_with_the_issue_list(node: Any) -> None:
    """The fast check and the reporting walk never disagree, so no issue is missed."""
    assert well_shaped(node) == (json_shape_issues(node, "X") == [])
