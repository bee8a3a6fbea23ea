"""``LiveSubscriptions``: this process's decoded copy of the live subscriptions, read again only
when the table changed, and indexed by the values their filters need.

A Task or ServiceRequest write used to read and decode every live subscription (its access
context, filters and topic) and evaluate each one's filters; with 1,000 subscriptions that was
most of the write's time, inside its transaction. Now each write reads one row, the
``subscription_generation`` token, in its own transaction: every change to a subscription that
matters here (created, a client's new version, turned off) draws a new token in the same
transaction, in whichever process made it, so a token equal to the one the copy was built
under means the copy is what the table holds. Any other token (another process's change, or
this transaction's own, uncommitted) and the copy is built again from the table.

Of the copy, a write evaluates only the subscriptions that can match it: those whose narrowest
plain reference or token filter names a value the written resource shows
(``conformance.subscriptions.filter_keys``), plus those with no such filter. They are evaluated
exactly as before and in id order, the order the event counters are locked in.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from conformance.access import AccessContext
from conformance.search_request import Criterion
from conformance.subscriptions import TOPICS, FilterKey, Topic, filter_criteria, filter_keys
from gateway.subscriptions import records

_MEMO_LIMIT = 10_000


@dataclass(frozen=True)
class Matcher:
    """One live subscription as a write evaluates it."""

    id: str
    topic: Topic
    criteria: tuple[Criterion, ...]
    access: AccessContext


@dataclass(frozen=True)
class LiveSet:
    """The live subscriptions on one resource type, in id order, indexed by filter key."""

    matchers: tuple[Matcher, ...] = ()
    by_key: dict[FilterKey, tuple[int, ...]] = field(default_factory=dict)
    unkeyed: tuple[int, ...] = ()

    def candidates(self, keys: Iterable[FilterKey]) -> list[Matcher]:
        """The subscriptions a resource showing ``keys`` may match, in id order."""
        positions = set(self.unkeyed)
        for key in keys:
            positions.update(self.by_key.get(key, ()))
        return [self.matchers[i] for i in sorted(positions)]


class LiveSubscriptions:
    def __init__(self, *, local_base: str) -> None:
        self.local_base = local_base
        self._state: tuple[str | None, dict[str, LiveSet]] = (None, {})
        self._criteria: dict[tuple[str, str], tuple[Criterion, ...]] = {}
        self._access: dict[str, AccessContext] = {}
        self.builds = 0
        """How many times a set was read from the table (for tests and curiosity)."""

    def of(self, connection: Connection, resource_type: str) -> LiveSet:
        """The live subscriptions on ``resource_type`` as ``connection``'s transaction sees
        them."""
        token = records.generation(connection)  # first: rows read after it are no older
        held_token, sets = self._state
        if token is not None and token == held_token and resource_type in sets:
            return sets[resource_type]
        built = self._build(records.live_configs(connection, resource_type))
        # every set kept under a token was read after reading that token
        held_token, sets = self._state
        kept = dict(sets) if held_token == token else {}
        kept[resource_type] = built
        self._state = (token, kept)
        return built

    def _build(self, configs: list[records.LiveConfig]) -> LiveSet:
        self.builds += 1
        if len(self._criteria) > _MEMO_LIMIT:
            self._criteria.clear()
        if len(self._access) > _MEMO_LIMIT:
            self._access.clear()
        matchers: list[Matcher] = []
        by_key: dict[FilterKey, list[int]] = {}
        unkeyed: list[int] = []
        for position, config in enumerate(configs):
            topic = TOPICS[config.topic]
            criteria = self._criteria_of(topic, config.filters)
            access = self._access.get(config.access)
            if access is None:
                access = self._access[config.access] = records.access_from_json(config.access)
            matchers.append(Matcher(config.id, topic, criteria, access))
            keys = filter_keys(criteria)
            if keys is None:
                unkeyed.append(position)
            else:
                for key in keys:
                    by_key.setdefault(key, []).append(position)
        return LiveSet(
            tuple(matchers),
            {key: tuple(positions) for key, positions in by_key.items()},
            tuple(unkeyed),
        )

    def _criteria_of(self, topic: Topic, filters_json: str) -> tuple[Criterion, ...]:
        key = (topic.canonical, filters_json)
        criteria = self._criteria.get(key)
        if criteria is None:
            filters = records.filter_pairs(filters_json)
            criteria = filter_criteria(topic, filters, local_base=self.local_base)
            self._criteria[key] = criteria
        return criteria
