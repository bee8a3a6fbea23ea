from collections.abc import Mapping
from typing import Any

import pytest

from conformance.access import SYSTEM, AccessContext
from conformance.errors import BusinessRuleViolation, Forbidden, TransitionNotAllowed
from conformance.task_lifecycle import REASON_REQUIRED_STATUSES, Role
from conformance.task_rules import (
    ProcedureFacts,
    TaskParties,
    changed_elements,
    check_task_create,
    check_task_delete,
    check_task_update,
    organization_of,
    roles_of,
)
from tests.conformance.examples import (
    EHR_BASE,
    TEMP_CODES,
    resulting_activity,
    task_completed,
    task_requested,
)

Task = dict[str, Any]

HOSPITAL = "Organization/mercy-hospital"
CBO = "Organization/cbo-eastside-food"
OTHER_CBO = "Organization/northside-housing"
FOCUS_KEY = f"{EHR_BASE}/ServiceRequest/sr-food-2001"
PROCEDURE = "Procedure/proc-6001"

AS_HOSPITAL = AccessContext(organization=HOSPITAL, user="PractitionerRole/prr-dr-okafor")
AS_CBO = AccessContext(organization=CBO, client_id="eastside-app")
AS_OTHER_CBO = AccessContext(organization=OTHER_CBO)
ANONYMOUS = AccessContext(organization=None)

PARTIES = TaskParties(requester=HOSPITAL, owner=CBO, has_owner=True)
UNOWNED = TaskParties(requester=HOSPITAL, owner=None, has_owner=False)
PROCEDURES = {PROCEDURE: ProcedureFacts(exists=True, based_on=frozenset({FOCUS_KEY}))}

OWNER_EDGES = [
    ("requested", "accepted"),
    ("requested", "rejected"),
    ("requested", "cancelled"),
    ("accepted", "in-progress"),
    ("accepted", "on-hold"),
    ("accepted", "completed"),
    ("accepted", "failed"),
    ("accepted", "cancelled"),
    ("in-progress", "on-hold"),
    ("in-progress", "completed"),
    ("in-progress", "failed"),
    ("in-progress", "cancelled"),
    ("on-hold", "in-progress"),
    ("on-hold", "completed"),
    ("on-hold", "failed"),
    ("on-hold", "cancelled"),
]
REQUESTER_EDGES = [
    ("draft", "requested"),
    ("requested", "cancelled"),
    ("accepted", "cancelled"),
    ("in-progress", "cancelled"),
    ("on-hold", "cancelled"),
    *(
        (status, "entered-in-error")
        for status in (
            "draft",
            "requested",
            "accepted",
            "in-progress",
            "on-hold",
            "rejected",
            "cancelled",
            "completed",
            "failed",
        )
    ),
]


def task(status: str = "requested", **changes: Any) -> Task:
    """The shared requested Task at ``status``, with ``changes`` applied."""
    result = task_requested()
    result["status"] = status
    result.update(changes)
    return result


def moved(old: Task, status: str, **changes: Any) -> Task:
    """``old`` moved to ``status`` the way a well-behaved client does it."""
    new = {**old, "status": status, "lastModified": "2025-03-12T09:30:00-05:00", **changes}
    if status in REASON_REQUIRED_STATUSES:
        new.setdefault("statusReason", {"text": "Client could not be reached"})
    if status == "completed":
        new.setdefault("output", [resulting_activity(PROCEDURE)])
    return new


def update(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    actor: AccessContext,
    *,
    old_parties: TaskParties = PARTIES,
    new_parties: TaskParties | None = None,
    procedures: Mapping[str, ProcedureFacts] = PROCEDURES,
    focus_key: str | None = FOCUS_KEY,
) -> None:
    check_task_update(
        old,
        new,
        actor=actor,
        old_parties=old_parties,
        new_parties=old_parties if new_parties is None else new_parties,
        procedures=procedures,
        focus_key=focus_key,
    )


def create(
    new: Mapping[str, Any],
    actor: AccessContext = AS_HOSPITAL,
    *,
    parties: TaskParties = PARTIES,
    procedures: Mapping[str, ProcedureFacts] = PROCEDURES,
) -> None:
    check_task_create(new, actor=actor, parties=parties, procedures=procedures, focus_key=FOCUS_KEY)


def expressions(error: Exception) -> list[str]:
    assert isinstance(error, (Forbidden, BusinessRuleViolation, TransitionNotAllowed))
    return [e for issue in error.issues for e in issue.expression]


# organization_of, roles_of


@pytest.mark.parametrize(
    ("resource", "organization"),
    [
        ({"resourceType": "Organization", "id": "mercy-hospital"}, HOSPITAL),
        (
            {
                "resourceType": "PractitionerRole",
                "id": "prr-1",
                "organization": {"reference": HOSPITAL},
            },
            HOSPITAL,
        ),
        (
            {"resourceType": "HealthcareService", "id": "hs-1", "providedBy": {"reference": CBO}},
            CBO,
        ),
        ({"resourceType": "PractitionerRole", "id": "prr-2"}, None),
        ({"resourceType": "HealthcareService", "id": "hs-2", "providedBy": {"display": "x"}}, None),
        ({"resourceType": "Practitioner", "id": "dr-okafor"}, None),
        ({"resourceType": "Patient", "id": "pat-1001"}, None),
    ],
)
def test_organization_of__the_organization_a_party_acts_for(
    resource: dict[str, Any], organization: str | None
) -> None:
    assert organization_of(resource) == organization


@pytest.mark.parametrize(
    ("actor", "parties", "roles"),
    [
        (AS_HOSPITAL, PARTIES, {Role.REQUESTER}),
        (AS_CBO, PARTIES, {Role.OWNER}),
        (AS_OTHER_CBO, PARTIES, set()),
        (ANONYMOUS, PARTIES, set()),
        (ANONYMOUS, TaskParties(requester=None, owner=None), set()),
        (SYSTEM, PARTIES, set()),
        (AS_HOSPITAL, TaskParties(HOSPITAL, HOSPITAL, True), {Role.REQUESTER, Role.OWNER}),
    ],
)
def test_roles_of__from_the_acting_organization(
    actor: AccessContext, parties: TaskParties, roles: set[Role]
) -> None:
    assert roles_of(actor, parties) == roles


def test_changed_elements__ignores_server_managed_elements() -> None:
    old = task("requested")
    new = {**old, "id": "other", "meta": {"versionId": "9"}, "status": "accepted"}
    del new["priority"]

    assert changed_elements(old, new) == ["priority", "status"]


# Create


@pytest.mark.parametrize("status", ["draft", "requested"])
def test_check_task_create__requester_creates_draft_or_requested(status: str) -> None:
    create(task(status))


def test_check_task_create__open_task_without_owner() -> None:
    new = task("requested")
    del new["owner"]

    create(new, parties=UNOWNED)


@pytest.mark.parametrize("actor", [AS_CBO, AS_OTHER_CBO, ANONYMOUS, SYSTEM])
def test_check_task_create__only_the_requester_may_create(actor: AccessContext) -> None:
    with pytest.raises(Forbidden) as caught:
        create(task("requested"), actor)

    assert caught.value.status == 403
    assert caught.value.expression == ("Task.requester",)


@pytest.mark.parametrize(
    "status", ["accepted", "in-progress", "completed", "cancelled", "received", "ready"]
)
def test_check_task_create__other_initial_status_is_refused(status: str) -> None:
    with pytest.raises(TransitionNotAllowed) as caught:
        create(task(status))

    assert caught.value.status == 422
    assert caught.value.expression == ("Task.status",)


def test_check_task_create__unresolvable_requester_is_a_business_rule_violation() -> None:
    with pytest.raises(BusinessRuleViolation) as caught:
        create(task(), parties=TaskParties(requester=None, owner=CBO, has_owner=True))

    assert caught.value.status == 422
    assert expressions(caught.value) == ["Task.requester"]


def test_check_task_create__unresolvable_owner_is_a_business_rule_violation() -> None:
    with pytest.raises(BusinessRuleViolation) as caught:
        create(task(), parties=TaskParties(requester=HOSPITAL, owner=None, has_owner=True))

    assert expressions(caught.value) == ["Task.owner"]


def test_check_task_create__reports_both_unresolvable_parties() -> None:
    with pytest.raises(BusinessRuleViolation) as caught:
        create(task(), parties=TaskParties(requester=None, owner=None, has_owner=True))

    assert expressions(caught.value) == ["Task.requester", "Task.owner"]


def test_check_task_create__output_naming_an_unknown_procedure_is_refused() -> None:
    new = task("requested", output=[resulting_activity("Procedure/unknown")])

    with pytest.raises(BusinessRuleViolation) as caught:
        create(new)

    assert expressions(caught.value) == ["Task.output[0].valueReference"]


# Update: who is a party


@pytest.mark.parametrize("actor", [AS_OTHER_CBO, ANONYMOUS, SYSTEM])
def test_check_task_update__non_party_is_forbidden(actor: AccessContext) -> None:
    old = task("requested")

    with pytest.raises(Forbidden) as caught:
        update(old, moved(old, "accepted"), actor)

    assert caught.value.status == 403
    assert caught.value.expression == ("Task",)


def test_check_task_update__non_party_is_forbidden_even_without_changes() -> None:
    old = task("accepted")

    with pytest.raises(Forbidden):
        update(old, dict(old), AS_OTHER_CBO)


# Update: status moves


@pytest.mark.parametrize(("current", "target"), OWNER_EDGES)
def test_check_task_update__owner_makes_every_owner_move(current: str, target: str) -> None:
    old = task(current)

    update(old, moved(old, target), AS_CBO)


@pytest.mark.parametrize(("current", "target"), REQUESTER_EDGES)
def test_check_task_update__requester_makes_every_requester_move(current: str, target: str) -> None:
    old = task(current)
    if current in REASON_REQUIRED_STATUSES:
        old["statusReason"] = {"text": "reason"}
    if current == "completed":
        old["output"] = [resulting_activity(PROCEDURE)]

    update(old, moved(old, target), AS_HOSPITAL)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("requested", "accepted"),
        ("requested", "rejected"),
        ("accepted", "in-progress"),
        ("accepted", "on-hold"),
        ("in-progress", "completed"),
        ("in-progress", "failed"),
        ("on-hold", "in-progress"),
    ],
)
def test_check_task_update__requester_setting_an_owner_status_is_forbidden(
    current: str, target: str
) -> None:
    old = task(current)

    with pytest.raises(Forbidden) as caught:
        update(old, moved(old, target), AS_HOSPITAL)

    assert caught.value.status == 403
    assert caught.value.expression == ("Task.status",)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("draft", "requested"),
        ("requested", "entered-in-error"),
        ("in-progress", "entered-in-error"),
    ],
)
def test_check_task_update__owner_setting_a_requester_status_is_forbidden(
    current: str, target: str
) -> None:
    old = task(current)

    with pytest.raises(Forbidden) as caught:
        update(old, moved(old, target), AS_CBO)

    assert caught.value.expression == ("Task.status",)


@pytest.mark.parametrize(
    ("current", "target", "actor"),
    [
        ("requested", "in-progress", AS_CBO),
        ("requested", "completed", AS_CBO),
        ("requested", "on-hold", AS_CBO),
        ("draft", "accepted", AS_CBO),
        ("draft", "cancelled", AS_HOSPITAL),
        ("accepted", "requested", AS_HOSPITAL),
        ("in-progress", "accepted", AS_CBO),
        ("requested", "received", AS_CBO),
        ("requested", "ready", AS_CBO),
    ],
)
def test_check_task_update__off_diagram_move_is_not_allowed(
    current: str, target: str, actor: AccessContext
) -> None:
    old = task(current)

    with pytest.raises(TransitionNotAllowed) as caught:
        update(old, moved(old, target), actor)

    assert caught.value.status == 422
    assert caught.value.expression == ("Task.status",)


def test_check_task_update__refusal_names_the_allowed_moves() -> None:
    old = task("requested")

    with pytest.raises(TransitionNotAllowed) as caught:
        update(old, moved(old, "in-progress"), AS_CBO)

    assert "accepted, cancelled, rejected" in caught.value.detail


@pytest.mark.parametrize(
    ("current", "target", "actor"),
    [
        ("completed", "in-progress", AS_CBO),
        ("completed", "accepted", AS_HOSPITAL),
        ("rejected", "accepted", AS_CBO),
        ("rejected", "requested", AS_HOSPITAL),
        ("cancelled", "requested", AS_HOSPITAL),
        ("cancelled", "in-progress", AS_CBO),
        ("failed", "in-progress", AS_CBO),
        ("entered-in-error", "requested", AS_HOSPITAL),
        ("entered-in-error", "draft", AS_HOSPITAL),
    ],
)
def test_check_task_update__terminal_task_does_not_move(
    current: str, target: str, actor: AccessContext
) -> None:
    old = task(current, statusReason={"text": "reason"})

    with pytest.raises(TransitionNotAllowed) as caught:
        update(old, moved(old, target), actor)

    assert caught.value.expression == ("Task.status",)


@pytest.mark.parametrize(
    ("current", "actor", "change"),
    [
        ("completed", AS_CBO, {"note": [{"text": "Client called back"}]}),
        ("completed", AS_HOSPITAL, {"description": "edited"}),
        ("rejected", AS_CBO, {"statusReason": {"text": "changed my mind"}}),
        ("cancelled", AS_HOSPITAL, {"priority": "urgent"}),
        ("entered-in-error", AS_HOSPITAL, {"description": "edited"}),
    ],
)
def test_check_task_update__terminal_task_cannot_be_edited(
    current: str, actor: AccessContext, change: dict[str, Any]
) -> None:
    old = task(current, statusReason={"text": "reason"})
    if current == "completed":
        old["output"] = [resulting_activity(PROCEDURE)]

    with pytest.raises(TransitionNotAllowed):
        update(old, {**old, **change}, actor)


@pytest.mark.parametrize("current", ["completed", "rejected", "entered-in-error"])
def test_check_task_update__unchanged_terminal_task_passes(current: str) -> None:
    old = task(current, statusReason={"text": "reason"})
    if current == "completed":
        old["output"] = [resulting_activity(PROCEDURE)]
    new = {**old, "meta": {"versionId": "5", "lastUpdated": "2025-03-22T00:00:00Z"}}

    update(old, new, AS_CBO)


def test_check_task_update__owner_cannot_mark_a_completed_task_entered_in_error() -> None:
    old = task("completed", output=[resulting_activity(PROCEDURE)])

    with pytest.raises(Forbidden) as caught:
        update(old, moved(old, "entered-in-error"), AS_CBO)

    assert caught.value.expression == ("Task.status",)


# Update: what the owner may change


@pytest.mark.parametrize(
    "change",
    [
        {"statusReason": {"text": "Waiting for documents"}},
        {"businessStatus": {"text": "contact attempted"}},
        {"executionPeriod": {"start": "2025-03-12T09:30:00-05:00"}},
        {"lastModified": "2025-03-12T09:30:00-05:00"},
        {
            "output": [
                {
                    "type": {"coding": [{"system": TEMP_CODES, "code": "additional-content"}]},
                    "valueReference": {"reference": "Observation/enrolled-1"},
                }
            ]
        },
        {"output": [resulting_activity(PROCEDURE)]},
        {"note": [{"text": "Left a voicemail"}]},
        {"meta": {"versionId": "2"}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_check_task_update__owner_may_change_its_elements(change: dict[str, Any]) -> None:
    old = task("accepted")

    update(old, {**old, **change}, AS_CBO)


@pytest.mark.parametrize(
    "element",
    [
        "priority",
        "description",
        "focus",
        "for",
        "requester",
        "owner",
        "input",
        "restriction",
        "code",
        "intent",
        "authoredOn",
        "identifier",
        "basedOn",
        "partOf",
    ],
)
def test_check_task_update__owner_may_not_change_other_elements(element: str) -> None:
    old = task("accepted")
    new = {**old, element: {"text": "changed"}}

    with pytest.raises(Forbidden) as caught:
        update(old, new, AS_CBO)

    assert caught.value.status == 403
    assert caught.value.expression == (f"Task.{element}",)


def test_check_task_update__owner_removing_an_element_is_a_change() -> None:
    old = task("accepted")
    new = dict(old)
    del new["restriction"]

    with pytest.raises(Forbidden) as caught:
        update(old, new, AS_CBO)

    assert caught.value.expression == ("Task.restriction",)


def test_check_task_update__owner_refusal_names_every_forbidden_element() -> None:
    old = task("accepted")
    new = moved(old, "in-progress", priority="urgent", description="x")

    with pytest.raises(Forbidden) as caught:
        update(old, new, AS_CBO)

    assert caught.value.expression == ("Task.description", "Task.priority")


def test_check_task_update__owner_reassigning_the_task_is_forbidden() -> None:
    old = task("accepted")
    new = {**old, "owner": {"reference": OTHER_CBO}}

    with pytest.raises(Forbidden) as caught:
        update(
            old,
            new,
            AS_CBO,
            new_parties=TaskParties(requester=HOSPITAL, owner=OTHER_CBO, has_owner=True),
        )

    assert caught.value.expression == ("Task.owner",)


def test_check_task_update__owner_completes_the_shared_example() -> None:
    # The completed example differs from the requested one only in owner-editable elements.
    old = task("in-progress")

    update(old, task_completed(), AS_CBO)


# Update: notes


NOTE_1 = {"time": "2025-03-12T09:30:00-05:00", "text": "Called the client"}
NOTE_2 = {"time": "2025-03-13T09:30:00-05:00", "text": "Appointment booked"}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ([], [NOTE_1]),
        ([NOTE_1], [NOTE_1, NOTE_2]),
    ],
)
def test_check_task_update__owner_may_append_notes(
    before: list[dict[str, str]], after: list[dict[str, str]]
) -> None:
    old = task("accepted", note=before)

    update(old, {**old, "note": after}, AS_CBO)


@pytest.mark.parametrize(
    "after",
    [
        [{**NOTE_1, "text": "Called the client twice"}],
        [NOTE_2],
        [],
        [NOTE_2, NOTE_1],
    ],
    ids=["edited", "replaced", "removed", "inserted-before"],
)
def test_check_task_update__owner_may_not_change_or_remove_notes(
    after: list[dict[str, str]],
) -> None:
    old = task("accepted", note=[NOTE_1])

    with pytest.raises(Forbidden) as caught:
        update(old, {**old, "note": after}, AS_CBO)

    assert caught.value.expression == ("Task.note",)


def test_check_task_update__owner_may_not_drop_the_note_element() -> None:
    old = task("accepted", note=[NOTE_1])
    new = dict(old)
    del new["note"]

    with pytest.raises(Forbidden) as caught:
        update(old, new, AS_CBO)

    assert caught.value.expression == ("Task.note",)


# Update: what the requester may change


@pytest.mark.parametrize(
    "change",
    [
        {"priority": "urgent"},
        {"description": "Updated instructions"},
        {"note": [{"text": "rewritten"}]},
        {"restriction": {"period": {"end": "2025-05-01"}}},
        {"input": []},
    ],
    ids=lambda change: next(iter(change)),
)
def test_check_task_update__requester_may_change_anything_else(change: dict[str, Any]) -> None:
    old = task("accepted", note=[NOTE_1])

    update(old, {**old, **change}, AS_HOSPITAL)


def test_check_task_update__requester_may_reassign_the_owner() -> None:
    old = task("requested")
    new = {**old, "owner": {"reference": OTHER_CBO}}

    update(
        old,
        new,
        AS_HOSPITAL,
        new_parties=TaskParties(requester=HOSPITAL, owner=OTHER_CBO, has_owner=True),
    )


def test_check_task_update__new_owner_must_resolve() -> None:
    old = task("requested")
    new = {**old, "owner": {"reference": "Organization/unknown"}}

    with pytest.raises(BusinessRuleViolation) as caught:
        update(
            old,
            new,
            AS_HOSPITAL,
            new_parties=TaskParties(requester=HOSPITAL, owner=None, has_owner=True),
        )

    assert caught.value.status == 422
    assert expressions(caught.value) == ["Task.owner"]


def test_check_task_update__new_requester_must_resolve() -> None:
    old = task("requested")
    new = {**old, "requester": {"reference": "Organization/unknown"}}

    with pytest.raises(BusinessRuleViolation) as caught:
        update(
            old,
            new,
            AS_HOSPITAL,
            new_parties=TaskParties(requester=None, owner=CBO, has_owner=True),
        )

    assert expressions(caught.value) == ["Task.requester"]


# Update: claiming an open Task


def _claimed(old: Task, organization: str, **changes: Any) -> Task:
    return {**old, "owner": {"reference": organization}, **changes}


def _unowned(status: str = "requested") -> Task:
    result = task(status)
    del result["owner"]
    return result


@pytest.mark.parametrize("status", ["requested", "accepted"])
def test_check_task_update__open_requested_task_can_be_claimed(status: str) -> None:
    old = _unowned()
    new = _claimed(old, CBO, status=status)

    update(old, new, AS_CBO, old_parties=UNOWNED, new_parties=PARTIES)


def test_check_task_update__claim_may_change_only_owner_editable_elements() -> None:
    old = _unowned()
    new = _claimed(old, CBO, priority="urgent")

    with pytest.raises(Forbidden) as caught:
        update(old, new, AS_CBO, old_parties=UNOWNED, new_parties=PARTIES)

    assert caught.value.expression == ("Task.priority",)


def test_check_task_update__claim_for_another_organization_is_forbidden() -> None:
    old = _unowned()
    new = _claimed(old, OTHER_CBO)

    with pytest.raises(Forbidden) as caught:
        update(
            old,
            new,
            AS_CBO,
            old_parties=UNOWNED,
            new_parties=TaskParties(requester=HOSPITAL, owner=OTHER_CBO, has_owner=True),
        )

    assert caught.value.expression == ("Task",)


def test_check_task_update__owned_task_cannot_be_claimed() -> None:
    old = task("requested")  # owned by CBO
    new = _claimed(old, OTHER_CBO)

    with pytest.raises(Forbidden):
        update(
            old,
            new,
            AS_OTHER_CBO,
            new_parties=TaskParties(requester=HOSPITAL, owner=OTHER_CBO, has_owner=True),
        )


def test_check_task_update__task_with_an_unresolvable_owner_cannot_be_claimed() -> None:
    old = task("requested", owner={"reference": "Organization/unknown"})
    new = _claimed(old, CBO)

    with pytest.raises(Forbidden):
        update(
            old,
            new,
            AS_CBO,
            old_parties=TaskParties(requester=HOSPITAL, owner=None, has_owner=True),
            new_parties=PARTIES,
        )


@pytest.mark.parametrize("status", ["draft", "accepted", "cancelled"])
def test_check_task_update__only_a_requested_task_can_be_claimed(status: str) -> None:
    old = _unowned(status)
    new = _claimed(old, CBO)

    with pytest.raises(Forbidden):
        update(old, new, AS_CBO, old_parties=UNOWNED, new_parties=PARTIES)


def test_check_task_update__anonymous_cannot_claim() -> None:
    old = _unowned()

    with pytest.raises(Forbidden):
        update(
            old,
            old,
            ANONYMOUS,
            old_parties=UNOWNED,
            new_parties=TaskParties(requester=HOSPITAL, owner=None, has_owner=False),
        )


# Update: completion and outputs


def test_check_task_update__completion_needs_a_resulting_activity() -> None:
    old = task("in-progress")

    with pytest.raises(BusinessRuleViolation) as caught:
        update(old, moved(old, "completed", output=[]), AS_CBO)

    assert caught.value.status == 422
    assert expressions(caught.value) == ["Task.output"]


def test_check_task_update__additional_content_alone_does_not_complete() -> None:
    old = task("in-progress")
    content = {
        "type": {"coding": [{"system": TEMP_CODES, "code": "additional-content"}]},
        "valueReference": {"reference": "Observation/enrolled-1"},
    }

    with pytest.raises(BusinessRuleViolation) as caught:
        update(old, moved(old, "completed", output=[content]), AS_CBO)

    assert expressions(caught.value) == ["Task.output"]


def test_check_task_update__completion_with_a_procedure_code() -> None:
    old = task("in-progress")
    coded = {
        "type": {"coding": [{"system": TEMP_CODES, "code": "resulting-activity"}]},
        "valueCodeableConcept": {
            "coding": [{"system": "http://snomed.info/sct", "code": "467771000124109"}]
        },
    }

    update(old, moved(old, "completed", output=[coded]), AS_CBO)


@pytest.mark.parametrize(
    ("procedures", "focus_key"),
    [
        ({}, FOCUS_KEY),
        ({PROCEDURE: ProcedureFacts(exists=False)}, FOCUS_KEY),
        ({PROCEDURE: ProcedureFacts(exists=True)}, FOCUS_KEY),
        (
            {
                PROCEDURE: ProcedureFacts(
                    exists=True, based_on=frozenset({f"{EHR_BASE}/ServiceRequest/other"})
                )
            },
            FOCUS_KEY,
        ),
        (PROCEDURES, None),
    ],
    ids=["unknown", "not-stored", "no-based-on", "other-focus", "task-without-focus"],
)
def test_check_task_update__procedure_output_must_exist_and_be_based_on_the_focus(
    procedures: dict[str, ProcedureFacts], focus_key: str | None
) -> None:
    old = task("in-progress")

    with pytest.raises(BusinessRuleViolation) as caught:
        update(old, moved(old, "completed"), AS_CBO, procedures=procedures, focus_key=focus_key)

    assert expressions(caught.value) == ["Task.output[0].valueReference"]


def test_check_task_update__every_procedure_output_is_checked() -> None:
    old = task("in-progress")
    outputs = [resulting_activity(PROCEDURE), resulting_activity("Procedure/unknown")]

    with pytest.raises(BusinessRuleViolation) as caught:
        update(old, moved(old, "completed", output=outputs), AS_CBO)

    assert expressions(caught.value) == ["Task.output[1].valueReference"]


def test_check_task_update__procedure_output_is_checked_before_completion_too() -> None:
    old = task("in-progress")
    new = {**old, "output": [resulting_activity("Procedure/unknown")]}

    with pytest.raises(BusinessRuleViolation) as caught:
        update(old, new, AS_CBO)

    assert expressions(caught.value) == ["Task.output[0].valueReference"]


# Delete


@pytest.mark.parametrize("status", ["draft", "entered-in-error"])
def test_check_task_delete__requester_deletes_draft_or_entered_in_error(status: str) -> None:
    check_task_delete(task(status), actor=AS_HOSPITAL, parties=PARTIES)


@pytest.mark.parametrize(
    "status", ["requested", "accepted", "in-progress", "on-hold", "completed", "cancelled"]
)
def test_check_task_delete__live_or_closed_task_cannot_be_deleted(status: str) -> None:
    with pytest.raises(BusinessRuleViolation) as caught:
        check_task_delete(task(status), actor=AS_HOSPITAL, parties=PARTIES)

    assert caught.value.status == 422
    assert caught.value.expression == ("Task.status",)


@pytest.mark.parametrize("actor", [AS_CBO, AS_OTHER_CBO, ANONYMOUS, SYSTEM])
def test_check_task_delete__only_the_requester_deletes(actor: AccessContext) -> None:
    with pytest.raises(Forbidden) as caught:
        check_task_delete(task("draft"), actor=actor, parties=PARTIES)

    assert caught.value.status == 403
    assert caught.value.expression == ("Task",)
