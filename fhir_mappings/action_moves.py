"""The JSON actions as Task status moves, and which ones the owner can take from a status.

The moves themselves are ``conformance.task_lifecycle``'s (no second copy of the rules); this
only names them the way the CBO JSON API does.
"""

from typing import Literal

from conformance.task_lifecycle import TERMINAL_STATUSES, Role, allowed_next_statuses

ActionName = Literal[
    "accept", "decline", "start", "hold", "resume", "complete", "fail", "cancel", "message"
]

TARGET_STATUS: dict[str, str] = {
    "accept": "accepted",
    "decline": "rejected",
    "start": "in-progress",
    "hold": "on-hold",
    "resume": "in-progress",
    "complete": "completed",
    "fail": "failed",
    "cancel": "cancelled",
}
"""The Task.status each status-changing action sets; ``message`` keeps the status."""

_STATUS_ACTIONS: tuple[ActionName, ...] = (
    "accept",
    "decline",
    "start",
    "hold",
    "resume",
    "complete",
    "fail",
    "cancel",
)
_FROM_ONLY: dict[str, str] = {"start": "accepted", "resume": "on-hold"}
"""Both move to in-progress; the API names the move after where it comes from."""


def allowed_actions(status: str) -> list[ActionName]:
    """The actions the owner organization may take on a Task in ``status``, in API order."""
    next_statuses = set(allowed_next_statuses(status, frozenset({Role.OWNER})))
    names: list[ActionName] = [
        action
        for action in _STATUS_ACTIONS
        if TARGET_STATUS[action] in next_statuses and _FROM_ONLY.get(action, status) == status
    ]
    if status not in TERMINAL_STATUSES and status != "draft":
        names.append("message")
    return names
