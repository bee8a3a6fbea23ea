"""What the gateway gathers for one referral before it can show it, and the partner's policy."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from fhir_mappings._fhir_json import Resource


@dataclass(frozen=True)
class TaskChange:
    """One stored Task version and the Provenance whose target is that version (if any)."""

    task: Resource
    provenance: Resource | None = None


@dataclass(frozen=True)
class ReferralRecord:
    """Everything fetched for one referral, as FHIR JSON; any piece but the Task may be missing."""

    task: Resource
    """The current Task version (``meta.versionId`` and ``meta.lastUpdated`` set)."""
    service_request: Resource | None = None
    patient: Resource | None = None
    consents: Sequence[Resource] = ()
    """The Consents named by ``ServiceRequest.supportingInfo``."""
    reasons: Sequence[Resource] = ()
    """The Conditions and Observations named by ``ServiceRequest.reasonReference``."""
    requester_role: Resource | None = None
    requester_practitioner: Resource | None = None
    requester_organization: Resource | None = None
    procedures: Sequence[Resource] = ()
    """The Procedures named by ``Task.output``."""
    history: Sequence[TaskChange] = field(default_factory=tuple)
    """Every Task version, oldest first."""


@dataclass(frozen=True)
class DisclosurePolicy:
    """The receiving organization's partner settings that shape its view."""

    consent_required: bool
    """Show client details only once an active Consent covers the disclosure."""
    respond_within_hours: int | None = None
    """SLA for a first response (accept or decline) to a requested referral."""
    close_within_days: int | None = None
    """SLA for closing a referral once accepted."""
