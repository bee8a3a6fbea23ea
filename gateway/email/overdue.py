"""``OverdueReminders``: now and then, find referrals past their due time and e-mail the
receiving organization's staff once about each.

Due times are the referral view's own (``ReferralView.due``: the Task's restriction period,
else the partner's respond-within-hours while requested or close-within-days once accepted),
so the e-mail, the JSON API and the analytics agree on what is overdue. A reminder is
recorded in ``email_reminder`` in the same transaction that enqueues its e-mails; that
table's primary key (referral, organization, stage) lets exactly one scan win, whichever
process runs it and however often, so each referral gets one reminder per stage.
"""

import logging
from collections.abc import Callable

from sqlalchemy import Engine, and_, exists, select

from conformance.access import AccessContext
from conformance.errors import Forbidden, ResourceGone, ResourceNotFound
from conformance.fhir_time import InvalidDate, date_range
from gateway.email.delivery import SENDER_CLIENT
from gateway.email.notify import Stage, enqueue_referral_emails
from gateway.email.once import insert_once
from gateway.email.tables import reminder_table
from gateway.fhir.write_context import now_us
from gateway.partners.policy import Partner, get_partner
from gateway.partners.tables import partner_table
from gateway.periodic import Periodic
from gateway.referrals.cbo_core import CboApi
from gateway.store.engine import read_transaction, write_transaction
from gateway.store.tables import task_party_table

log = logging.getLogger("loopgate.email")

STAGE_STATUSES: dict[Stage, tuple[str, ...]] = {
    "respond": ("requested",),
    "close": ("accepted", "in-progress", "on-hold"),
}
P, T, R = partner_table.c, task_party_table.c, reminder_table.c


class OverdueReminders:
    def __init__(
        self,
        engine: Engine,
        cbo: CboApi,
        *,
        interval_s: float,
        wake_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.cbo = cbo
        self.wake_outbox = wake_outbox
        self.scans = 0
        """Scans finished by this object (tests wait on it)."""
        self._periodic = Periodic("overdue scan", interval_s, self._scan_and_log)

    def scan(self, *, now: int | None = None) -> int:
        """Enqueue a reminder for every overdue referral not reminded of yet at its stage;
        returns how many referrals got one. ``now`` is epoch µs."""
        moment = now_us() if now is None else now
        reminded = 0
        for partner, referral_id, stage in self._candidates():
            if self._overdue(partner, referral_id, stage, moment) and self._remind(
                partner.organization, referral_id, stage, moment
            ):
                reminded += 1
        if reminded and self.wake_outbox is not None:
            self.wake_outbox()
        self.scans += 1
        return reminded

    def _candidates(self) -> list[tuple[Partner, str, Stage]]:
        """Open referrals owned by partners with e-mail addresses and no reminder yet."""
        found: list[tuple[Partner, str, Stage]] = []
        with read_transaction(self.engine) as connection:
            organizations = connection.execute(select(P.organization)).scalars().all()
            partners = [get_partner(connection, o) for o in organizations]
            by_organization = {p.organization: p for p in partners if p.emails}
            if not by_organization:
                return []
            for stage, statuses in STAGE_STATUSES.items():
                sent = exists().where(
                    and_(
                        R.referral_id == T.task_id,
                        R.organization == T.owner_org,
                        R.stage == stage,
                    )
                )
                rows = connection.execute(
                    select(T.task_id, T.owner_org)
                    .where(
                        T.owner_org.in_(list(by_organization)),
                        T.status.in_(statuses),
                        ~sent,
                    )
                    .order_by(T.task_id)
                )
                found += [(by_organization[row.owner_org], row.task_id, stage) for row in rows]
        return found

    def _overdue(self, partner: Partner, referral_id: str, stage: Stage, now: int) -> bool:
        reader = AccessContext(organization=partner.organization, client_id=SENDER_CLIENT)
        try:
            view = self.cbo.get_referral(reader, referral_id)
        except (ResourceNotFound, ResourceGone, Forbidden):
            return False
        if view.status not in STAGE_STATUSES[stage] or not view.due:
            return False
        try:
            _, due_end = date_range(view.due)
        except InvalidDate:
            return False
        return now > due_end

    def _remind(self, organization: str, referral_id: str, stage: Stage, now: int) -> bool:
        with write_transaction(self.engine) as connection:
            claimed = insert_once(
                connection,
                reminder_table,
                {
                    "referral_id": referral_id,
                    "organization": organization,
                    "stage": stage,
                    "sent_at": now,
                },
            )
            if claimed:
                partner = get_partner(connection, organization)
                enqueue_referral_emails(
                    connection, partner, referral_id=referral_id, template="overdue", stage=stage
                )
        return claimed

    # -- the periodic task -----------------------------------------------------------------

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    def _scan_and_log(self) -> None:
        reminded = self.scan()
        if reminded:
            log.info("overdue scan: reminders for %d referrals", reminded)
