from typing import get_args

import pytest

from conformance.resources import validate_structure
from fhir_mappings import (
    CODES_BY_ACTION,
    REASON_SYSTEM,
    ReasonCode,
    reason_codes,
    reason_codesystem,
)
from fhir_mappings.reasons import CONCEPTS, OutcomeCode, actions_for, display_of


def test_reason_codesystem__is_a_valid_r4_codesystem():
    resource = reason_codesystem()

    validate_structure(resource)
    assert resource["id"] == "loopgate-referral-reason"
    assert resource["url"] == REASON_SYSTEM
    assert (resource["status"], resource["content"]) == ("active", "complete")
    assert resource["count"] == len(resource["concept"])


def test_reason_codesystem__every_concept_has_display_definition_and_actions():
    for concept in reason_codesystem()["concept"]:
        assert concept["display"]
        assert concept["definition"]
        actions = [p["valueCode"] for p in concept["property"] if p["code"] == "action"]
        assert actions, concept["code"]
        assert actions == actions_for(concept["code"])


def test_codes_by_action__every_code_is_defined_once():
    used = {code for codes in CODES_BY_ACTION.values() for code in codes}

    assert used == set(CONCEPTS)
    for codes in CODES_BY_ACTION.values():
        assert len(codes) == len(set(codes))


def test_reason_code__is_every_status_reason_and_no_outcome():
    reasons = {
        c for action in ("decline", "hold", "fail", "cancel") for c in CODES_BY_ACTION[action]
    }

    assert set(get_args(ReasonCode)) == reasons
    assert set(get_args(OutcomeCode)) - {"other"} == set(CONCEPTS) - reasons


@pytest.mark.parametrize(
    ("code", "actions"),
    [
        ("no-capacity", ["decline", "hold", "fail", "cancel"]),
        ("waitlisted", ["hold"]),
        ("needs-client-action", ["hold"]),
        ("duplicate", ["decline", "cancel"]),
        ("service-provided", ["complete"]),
        ("other", ["decline", "hold", "fail", "cancel", "complete"]),
    ],
)
def test_actions_for__lists_the_actions_that_accept_a_code(code, actions):
    assert actions_for(code) == actions


def test_display_of__unknown_code_is_none():
    assert display_of("waitlisted") == "Client waitlisted"
    assert display_of("no-such-code") is None


def test_reason_codes__lists_system_and_concepts_with_actions():
    system, concepts = reason_codes()

    assert system == REASON_SYSTEM
    assert {c.code for c in concepts} == set(CONCEPTS)
    assert next(c for c in concepts if c.code == "waitlisted").actions == ("hold",)
