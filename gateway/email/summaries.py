"""A referral as e-mails and link pages describe it, read as the organization it was sent to."""

import orjson
from sqlalchemy import Engine

from adapters.email import ReferralSummary, summary_from_view
from conformance.access import AccessContext
from gateway.referrals.cbo_core import CboApi
from gateway.store import resource_rows
from gateway.store.engine import read_transaction


def referral_summary(
    cbo: CboApi, *, organization: str, referral_id: str, client_id: str
) -> ReferralSummary:
    """Raises what ``CboApi.get_referral`` raises when the organization may not see it."""
    reader = AccessContext(organization=organization, client_id=client_id)
    view = cbo.get_referral(reader, referral_id)
    return summary_from_view(view, organization=organization_name(cbo.engine, organization))


def organization_name(engine: Engine, organization: str) -> str | None:
    resource_type, _, resource_id = organization.partition("/")
    with read_transaction(engine) as connection:
        stored = resource_rows.current(connection, resource_type, resource_id)
    if stored is None or stored.body is None:
        return None
    name = orjson.loads(stored.body).get("name")
    return name if isinstance(name, str) else None
