"""Whether the SDOHCC Consents on a referral cover disclosing the client's details to its owner.

Consent travels through ``ServiceRequest.supportingInfo`` (reference/gravity.md §4.1, §7); a
covering Consent is active, is an information-disclosure (IDSCL) consent for this client, is in
its provision period, does not deny, and, when it names information recipients, names this
organization (http://hl7.org/fhir/R4/consent.html#provision).
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from conformance.fhir_time import InvalidDate, date_range, to_epoch_us
from conformance.terminology import ACT_CODE_SYSTEM, CONSENT_STATE
from fhir_mappings._fhir_json import (
    Resource,
    codings,
    obj,
    objs,
    parse_datetime,
    reference_text,
    same_resource,
    text,
)
from fhir_mappings.view_models import ConsentState, ConsentView

PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_RECIPIENT_ROLES = frozenset({"IRCP", "PRCP"})
_LONG_AGO = datetime.min.replace(tzinfo=UTC)


def consent_view_from_fhir(
    consents: Sequence[Resource],
    *,
    subject: str | None,
    recipient: str | None,
    required: bool,
    now: datetime | None,
) -> ConsentView:
    """The consent state of a referral for ``subject`` (Task.for) and ``recipient`` (Task.owner)."""
    covering = [c for c in consents if covers(c, subject=subject, recipient=recipient, now=now)]
    chosen = _most_relevant(covering or list(consents))
    if chosen is None:
        return ConsentView(state="none", covers_disclosure=False, required=required)
    status = chosen.get("status")
    return ConsentView(
        state=cast(ConsentState, status) if status in CONSENT_STATE else "none",
        covers_disclosure=bool(covering),
        required=required,
        date=text(chosen.get("dateTime")),
        expires=text(_period(chosen).get("end")),
    )


def covers(
    consent: Resource, *, subject: str | None, recipient: str | None, now: datetime | None
) -> bool:
    """Whether ``consent`` permits disclosing ``subject``'s details to ``recipient`` at ``now``."""
    provision = obj(consent.get("provision"))
    return (
        consent.get("status") == "active"
        and any(
            c.get("system") == ACT_CODE_SYSTEM and c.get("code") == "IDSCL"
            for concept in objs(consent.get("category"))
            for c in codings(concept)
        )
        and _same_subject(consent, subject)
        and provision.get("type") != "deny"
        and _in_period(_period(consent), now)
        and _names_recipient(provision, recipient)
    )


def _same_subject(consent: Resource, subject: str | None) -> bool:
    patient = reference_text(consent.get("patient"))
    return patient is None or subject is None or same_resource(patient, subject)


def _period(consent: Resource) -> dict[str, object]:
    return obj(obj(consent.get("provision")).get("period"))


def _in_period(period: dict[str, object], now: datetime | None) -> bool:
    if now is None:
        return True
    moment = to_epoch_us(now)
    try:
        if isinstance(period.get("start"), str) and date_range(str(period["start"]))[0] > moment:
            return False
        return not (
            isinstance(period.get("end"), str) and date_range(str(period["end"]))[1] < moment
        )
    except InvalidDate:
        return False


def _names_recipient(provision: Resource, recipient: str | None) -> bool:
    """True unless the provision lists information recipients and ``recipient`` is not one."""
    recipients = [
        reference_text(actor.get("reference"))
        for actor in objs(provision.get("actor"))
        if any(
            c.get("system") == PARTICIPATION_TYPE and c.get("code") in _RECIPIENT_ROLES
            for c in codings(actor.get("role"))
        )
    ]
    if not recipients:
        return True
    return any(same_resource(listed, recipient) for listed in recipients)


def _most_relevant(consents: list[Resource]) -> Resource | None:
    """An active Consent first, then the most recent one."""
    if not consents:
        return None
    active = [c for c in consents if c.get("status") == "active"]
    return max(active or consents, key=lambda c: parse_datetime(c.get("dateTime")) or _LONG_AGO)
