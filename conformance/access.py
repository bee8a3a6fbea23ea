"""Who is acting and what they may do: the one access-context object every service takes (pure).

The HTTP layer builds it from the caller's credentials (a SMART token: ``smart_auth``), never from
anything the request body says. ``grants`` are SMART scopes in a form the rest of Loopgate can
apply without knowing SMART's grammar; the workflow rules decide from ``organization`` whether
the caller is a Task's requester, its owner, or nobody.
"""

from dataclasses import dataclass, field
from typing import Literal

Level = Literal["patient", "user", "system"]
Letter = Literal["c", "r", "u", "d", "s"]
"""SMART v2 permission letters: create, read (read, vread, instance history), update, delete,
search (type search and type history). http://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html"""

INTERACTION_LETTERS: dict[str, Letter] = {
    "create": "c",
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "update": "u",
    "delete": "d",
    "search-type": "s",
    "history-type": "s",
    "history-system": "s",
}


@dataclass(frozen=True)
class Grant:
    """One granted scope: some interactions on a resource type (or ``*``) at a level."""

    level: Level
    resource_type: str
    letters: frozenset[Letter]
    constraints: tuple[tuple[str, str], ...] = ()
    """SMART v2 ``?param=value`` search constraints; a resource must match all of them."""

    def covers(self, resource_type: str, letter: Letter) -> bool:
        return letter in self.letters and self.resource_type in ("*", resource_type)


@dataclass(frozen=True)
class AccessContext:
    organization: str | None
    """Reference key of the acting organization, e.g. ``Organization/cbo-eastside-food``."""
    user: str | None = None
    """The acting person as a FHIR reference (``Practitioner/x``), when a person acts."""
    client_id: str | None = None
    """The registered software acting, when known."""
    grants: tuple[Grant, ...] | None = None
    """What the token allows; None means not limited by scopes (Loopgate itself)."""
    patient: str | None = None
    """Launch context patient (``Patient/123``) that ``patient``-level grants are confined to."""
    roles: frozenset[str] = field(default_factory=frozenset)
    """The user's roles (``clinician``, ``cbo-staff``, ``admin``)."""

    @property
    def label(self) -> str:
        """A PHI-free description for logs and audit records."""
        return self.client_id or self.organization or "anonymous"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def grants_for(self, resource_type: str, letter: Letter) -> tuple[Grant, ...]:
        """The grants that allow ``letter`` on ``resource_type``; empty means refuse (403).

        ``patient`` grants count only with a patient in context (SMART: patient scopes need
        one). With ``grants`` None (Loopgate itself) a single unconstrained grant is returned.
        """
        if self.grants is None:
            return (Grant("system", "*", frozenset({"c", "r", "u", "d", "s"})),)
        return tuple(
            grant
            for grant in self.grants
            if grant.covers(resource_type, letter)
            and (grant.level != "patient" or self.patient is not None)
        )


SYSTEM = AccessContext(organization=None, client_id="loopgate")
"""Loopgate itself, for records it writes (Provenance) and for operator tools."""
