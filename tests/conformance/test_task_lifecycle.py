import pytest

from conformance.task_lifecycle import (
    INITIAL_STATUSES,
    REFERRAL_TASK_STATUSES,
    SET_BY,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Role,
    allowed_next_statuses,
    is_allowed_transition,
    may_set,
)

REQUESTER = frozenset({Role.REQUESTER})
OWNER = frozenset({Role.OWNER})
BOTH = frozenset({Role.REQUESTER, Role.OWNER})

# The edges of the SDOHCC referral Task state diagram (reference/gravity.md §3.3).
DIAGRAM_EDGES = [
    ("draft", "requested"),
    ("requested", "accepted"),
    ("requested", "rejected"),
    ("requested", "cancelled"),
    ("accepted", "in-progress"),
    ("accepted", "on-hold"),
    ("accepted", "completed"),
    ("accepted", "failed"),
    ("accepted", "cancelled"),
    ("in-progress", "on-hold"),
    ("on-hold", "in-progress"),
    ("in-progress", "completed"),
    ("in-progress", "failed"),
    ("in-progress", "cancelled"),
    ("on-hold", "completed"),
    ("on-hold", "failed"),
    ("on-hold", "cancelled"),
] + [
    (status, "entered-in-error") for status in sorted(REFERRAL_TASK_STATUSES - {"entered-in-error"})
]


@pytest.mark.parametrize(("current", "target"), DIAGRAM_EDGES)
def test_is_allowed_transition__every_diagram_edge(current: str, target: str) -> None:
    assert is_allowed_transition(current, target)


def test_is_allowed_transition__nothing_beyond_the_diagram() -> None:
    table = {(current, target) for current, targets in TRANSITIONS.items() for target in targets}

    assert table == set(DIAGRAM_EDGES)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("requested", "in-progress"),
        ("requested", "completed"),
        ("requested", "on-hold"),
        ("requested", "failed"),
        ("requested", "draft"),
        ("draft", "accepted"),
        ("draft", "in-progress"),
        ("draft", "cancelled"),
        ("draft", "completed"),
        ("accepted", "requested"),
        ("accepted", "rejected"),
        ("in-progress", "accepted"),
        ("in-progress", "requested"),
        ("on-hold", "accepted"),
        ("rejected", "accepted"),
        ("rejected", "requested"),
        ("requested", "received"),
        ("requested", "ready"),
        ("ready", "accepted"),
        ("received", "accepted"),
        ("unknown-status", "accepted"),
    ],
)
def test_is_allowed_transition__refuses_moves_off_the_diagram(current: str, target: str) -> None:
    assert not is_allowed_transition(current, target)


@pytest.mark.parametrize("current", ["completed", "rejected", "failed", "cancelled"])
@pytest.mark.parametrize("target", sorted(REFERRAL_TASK_STATUSES - {"entered-in-error"}))
def test_is_allowed_transition__terminal_statuses_only_become_entered_in_error(
    current: str, target: str
) -> None:
    assert not is_allowed_transition(current, target)
    assert is_allowed_transition(current, "entered-in-error")


@pytest.mark.parametrize("target", sorted(REFERRAL_TASK_STATUSES))
def test_is_allowed_transition__nothing_leaves_entered_in_error(target: str) -> None:
    assert not is_allowed_transition("entered-in-error", target)


@pytest.mark.parametrize("status", sorted(REFERRAL_TASK_STATUSES))
def test_is_allowed_transition__staying_put_is_not_a_transition(status: str) -> None:
    assert not is_allowed_transition(status, status)


def test_referral_task_statuses__exclude_received_and_ready() -> None:
    assert "received" not in REFERRAL_TASK_STATUSES
    assert "ready" not in REFERRAL_TASK_STATUSES
    assert set(TRANSITIONS) == REFERRAL_TASK_STATUSES
    assert set(SET_BY) == REFERRAL_TASK_STATUSES


def test_status_groups() -> None:
    assert {"draft", "requested"} == INITIAL_STATUSES
    assert {"rejected", "cancelled", "completed", "failed", "entered-in-error"} == TERMINAL_STATUSES


@pytest.mark.parametrize(
    ("status", "requester", "owner"),
    [
        ("draft", True, False),
        ("requested", True, False),
        ("accepted", False, True),
        ("rejected", False, True),
        ("in-progress", False, True),
        ("on-hold", False, True),
        ("failed", False, True),
        ("completed", False, True),
        ("cancelled", True, True),
        ("entered-in-error", True, False),
    ],
)
def test_may_set__follows_the_set_by_table(status: str, requester: bool, owner: bool) -> None:
    assert may_set(REQUESTER, status) is requester
    assert may_set(OWNER, status) is owner
    assert may_set(BOTH, status) is (requester or owner)
    assert may_set(frozenset(), status) is False


@pytest.mark.parametrize("status", ["received", "ready", "bogus"])
def test_may_set__nobody_sets_a_non_referral_status(status: str) -> None:
    assert not may_set(BOTH, status)


@pytest.mark.parametrize(
    ("current", "roles", "expected"),
    [
        ("draft", REQUESTER, ["entered-in-error", "requested"]),
        ("draft", OWNER, []),
        ("requested", OWNER, ["accepted", "cancelled", "rejected"]),
        ("requested", REQUESTER, ["cancelled", "entered-in-error"]),
        (
            "accepted",
            OWNER,
            ["cancelled", "completed", "failed", "in-progress", "on-hold"],
        ),
        ("in-progress", OWNER, ["cancelled", "completed", "failed", "on-hold"]),
        ("on-hold", OWNER, ["cancelled", "completed", "failed", "in-progress"]),
        ("completed", OWNER, []),
        ("completed", REQUESTER, ["entered-in-error"]),
        ("entered-in-error", BOTH, []),
        ("requested", frozenset(), []),
    ],
)
def test_allowed_next_statuses__per_role(
    current: str, roles: frozenset[Role], expected: list[str]
) -> None:
    assert allowed_next_statuses(current, roles) == expected
