"""Turn a validated ``SearchRequest`` into SQL over the search-index tables (SQLAlchemy Core).

Each criterion becomes ``id IN (SELECT resource_id FROM search_<kind> WHERE …)`` so both
SQLite and PostgreSQL can plan it as a semi-join and start from the most selective index.
Spec: http://hl7.org/fhir/R4/search.html
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite

from conformance.search_index import TOKEN_INDEX_LENGTH, normalise_string
from conformance.search_request import (
    ChainQuery,
    Criterion,
    DateQuery,
    Include,
    ReferenceQuery,
    SearchRequest,
    SortKey,
    TokenQuery,
)
from gateway.access.policy import AccessFilter
from gateway.access.visibility import visibility_condition
from gateway.store import driver
from gateway.store.date_match import as_condition, date_match
from gateway.store.driver import Statement
from gateway.store.engine import is_sqlite
from gateway.store.resource_rows import StoredVersion
from gateway.store.tables import (
    date_table,
    reference_table,
    resource_table,
    string_table,
    task_party_table,
    token_table,
    version_table,
)
from gateway.store.task_inbox import inbox_range

R, V, TP = resource_table.c, version_table.c, task_party_table.c


def access_condition(
    access: AccessFilter | None, *, probe: bool = True, bound: bool = False
) -> ColumnElement[bool]:
    """What the caller may see of ``access.resource_type``, as a condition on ``resource``.

    ``bound``: the organization is left to the ``visible_to`` parameter of the statement's
    run (``{VISIBLE_TO: access.organization}``), so its visibility probes are built once.
    """
    if access is None or access.unrestricted:
        return true()
    conditions = []
    if access.groups is not None:
        conditions.append(
            or_(
                *(
                    and_(*(_criterion(access.resource_type, c, probe=probe) for c in group))
                    for group in access.groups
                )
            )
        )
    if access.organization is not None:
        conditions.append(
            _organization_visibility(access.resource_type)
            if bound
            else visibility_condition(access.resource_type, access.organization)
        )
    return and_(*conditions)


VISIBLE_TO = "visible_to"


@cache
def _organization_visibility(resource_type: str) -> ColumnElement[bool]:
    """``visibility_condition`` for the organization bound as ``visible_to``, built once per
    type: building its probes cost more than running them on a read by id."""
    return visibility_condition(resource_type, bindparam(VISIBLE_TO, type_=String))


def _bound_access(access: AccessFilter | None) -> dict[str, Any]:
    """The parameters a statement with ``access_condition(access, bound=True)`` runs with."""
    return {VISIBLE_TO: access.organization} if access is not None else {}


@dataclass(frozen=True)
class _Plan:
    """How a search reads the store: from what, under which condition, and which index
    picks its candidates."""

    source: FromClause
    where: ColumnElement[bool]
    resource_driven: bool
    """The resource table's own indexes (``_lastUpdated``, ``_id``) pick the candidates."""
    inbox: bool
    """The candidates are one range of task_party's inbox index, joined as ``source``."""
    params: dict[str, Any]
    """What the statement runs with (the organization its visibility probes are bound to)."""


def _plan(request: SearchRequest, access: AccessFilter | None) -> _Plan:
    conditions = [R.resource_type == request.resource_type, R.deleted.is_(False)]
    organization = access.organization if access is not None else None
    inbox = inbox_range(request.resource_type, request.criteria, visible_to=organization)
    criteria = request.criteria if inbox is None else inbox.remaining
    resource_driven = inbox is None and _driven_by_the_resource_table(criteria)
    probe = inbox is not None or resource_driven
    conditions.extend(_criterion(request.resource_type, c, probe=probe) for c in criteria)
    source: FromClause = resource_table
    if inbox is not None:  # exactly the Tasks its criteria match, visibility checked
        source = resource_table.join(task_party_table, TP.task_id == R.id)
        conditions.extend(inbox.conditions)
        if access is not None:
            access = replace(access, organization=None)
    conditions.append(access_condition(access, probe=probe, bound=True))
    where = and_(*conditions)
    return _Plan(source, where, resource_driven, inbox is not None, _bound_access(access))


def _driven_by_the_resource_table(criteria: Sequence[Criterion]) -> bool:
    """With ``_lastUpdated`` or ``_id``, the resource table's own indexes pick the candidates
    (a poller's recent slice): then each other criterion is best checked by probing the
    index rows of each candidate, where materialising the whole set a criterion matches (every
    requested Task, say) would cost far more. Without them, that set is the starting point."""
    return any(c.parameter.type in ("last-updated", "id") for c in criteria)


def count_matches(
    connection: Connection, request: SearchRequest, access: AccessFilter | None = None
) -> int:
    query, params = count_query(request, access)
    return int(connection.execute(query, params).scalar_one())


def count_query(
    request: SearchRequest, access: AccessFilter | None
) -> tuple[Select[int], dict[str, Any]]:
    """``count_matches``'s statement, and the parameters (beyond its own values) it runs with."""
    plan = _plan(request, access)
    return select(func.count()).select_from(plan.source).where(plan.where), plan.params


def visible_ids(connection: Connection, access: AccessFilter, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` (of ``access.resource_type``) the caller may see, deleted or not."""
    wanted = list(dict.fromkeys(ids))
    if access.unrestricted:
        return set(wanted)
    if access.groups is None and len(wanted) == 1:  # a read by id
        return _visible_one(connection, access, wanted[0])
    if access.groups is None:  # the organization alone limits what is seen
        query = _visible_to_organization(access.resource_type)
    else:
        query = _ids_among(access.resource_type, access_condition(access, bound=True))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        params = {"ids": wanted[start : start + 500], **_bound_access(access)}
        found.update(row.id for row in connection.execute(query, params))
    return found


@cache
def _visible_to_organization(resource_type: str) -> Select[tuple[str]]:
    """Which of the ``ids`` of the type the organization bound as ``visible_to`` sees."""
    return _ids_among(resource_type, _organization_visibility(resource_type))


_ONE_ID = "one_id"
# SQLAlchemy's own dialects for these two databases, placeholders written as ``?`` (what
# ``driver.Statement`` takes)
QMARK_DIALECTS = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.psycopg.dialect(paramstyle="qmark"),  # type: ignore[no-untyped-call]
}


def _visible_one(connection: Connection, access: AccessFilter, resource_id: str) -> set[str]:
    """``visible_ids`` of one id when the organization alone limits what is seen."""
    statement, names, constants = _visible_one_statement(
        access.resource_type, connection.dialect.name
    )
    given = {VISIBLE_TO: access.organization, _ONE_ID: resource_id}
    params = [given[name] if name in given else constants[name] for name in names]
    return {row[0] for row in driver.rows(connection, statement, params)}


@cache
def _visible_one_statement(
    resource_type: str, dialect_name: str
) -> tuple[Statement, tuple[str, ...], dict[str, Any]]:
    """The visibility check of a read by id, compiled once per type and database and sent
    straight to the driver: through Core's execution layer it took 51 µs, as text 6 µs
    (same-process A/B on SQLite). Its parameters in order, and the values of those that are
    the query's own constants."""
    query = select(R.id).where(
        R.resource_type == resource_type,
        R.id == bindparam(_ONE_ID, type_=String),
        _organization_visibility(resource_type),
    )
    compiled = query.compile(dialect=QMARK_DIALECTS[dialect_name])
    return Statement(str(compiled)), tuple(compiled.positiontup or ()), dict(compiled.params)


def _ids_among(resource_type: str, condition: ColumnElement[bool]) -> Select[tuple[str]]:
    """The ids, of those bound as ``ids``, of resources of the type meeting ``condition``."""
    return select(R.id).where(
        R.resource_type == resource_type, R.id.in_(bindparam("ids", expanding=True)), condition
    )


def find_matches(
    connection: Connection, request: SearchRequest, access: AccessFilter | None = None
) -> list[StoredVersion]:
    """One page of matching resources, in the requested order.

    The page's keys are chosen first and only their bodies are read: a search matching
    hundreds of resources no longer fetches every body to sort them.
    """
    query, params = page_query(request, access, sqlite=is_sqlite(connection))
    return [StoredVersion(*row) for row in connection.execute(query, params)]


def page_query(
    request: SearchRequest, access: AccessFilter | None, *, sqlite: bool
) -> tuple[Select[Any], dict[str, Any]]:
    """``find_matches``'s statement for a SQLite or PostgreSQL database, and the parameters
    (beyond its own values) it runs with. Its rows are ``StoredVersion``'s fields in order."""
    plan = _plan(request, access)
    # SQLite without statistics (a new database, until ``PRAGMA optimize`` has run) would walk
    # every resource of the type in ``last_updated`` order, probing each, to skip a sort: a
    # conditional create on one identifier got slower with every Patient stored. When the
    # criteria's index rows drive the search, order by an expression no index provides, so
    # the plan starts from those rows (PostgreSQL keeps its statistics and its own choice).
    start_from_criteria = sqlite and bool(request.criteria) and not plan.resource_driven
    order = _order(request, indexed_time=not start_from_criteria, inbox=plan.inbox)
    sort_columns = [key.column.label(f"sort_{n}") for n, key in enumerate(order)]
    page = (
        select(R.resource_type, R.id, R.version_id, R.last_updated, R.deleted, *sort_columns)
        .select_from(plan.source)
        .where(plan.where)
        .order_by(*(key.applied(key.column) for key in order))
        .limit(request.count)
        .offset(request.offset)
        .subquery(_PAGE)
    )
    query = (
        select(*_PAGE_KEY, V.body)
        .select_from(page.join(version_table, _PAGE_VERSION))
        .order_by(*(key.applied(_page_column(f"sort_{n}")) for n, key in enumerate(order)))
    )
    return query, plan.params


# The page subquery's columns by name: ``page.c`` built SQLAlchemy's column collection for the
# subquery on every search, some 230 of a search's 800 µs (same-process A/B, SQLite).
_PAGE = "page"


def _page_column(name: str, type_: Any = None) -> ColumnElement[Any]:
    return literal_column(f"{_PAGE}.{name}", type_)


_PAGE_KEY: tuple[
    ColumnElement[str],
    ColumnElement[str],
    ColumnElement[int],
    ColumnElement[int],
    ColumnElement[bool],
] = (
    _page_column("resource_type", R.resource_type.type),
    _page_column("id", R.id.type),
    _page_column("version_id", R.version_id.type),
    _page_column("last_updated", R.last_updated.type),
    _page_column("deleted", R.deleted.type),
)
_PAGE_VERSION = and_(
    V.resource_type == _page_column("resource_type"),
    V.id == _page_column("id"),
    V.version_id == _page_column("version_id"),
)


def included_keys(
    connection: Connection, include: Include, sources: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Local targets that ``include`` reaches from the matched resources."""
    ids = [rid for rtype, rid in sources if rtype == include.source_type]
    if not ids:
        return set()
    ref = reference_table.c
    conditions = [
        ref.resource_type == include.source_type,
        ref.param == include.parameter.code,
        ref.target_base == "",
        ref.resource_id.in_(ids),
    ]
    if include.target_type:
        conditions.append(ref.target_type == include.target_type)
    rows = connection.execute(select(ref.target_type, ref.target_id).where(*conditions))
    return {(row.target_type, row.target_id) for row in rows}


def revincluded_keys(
    connection: Connection, include: Include, targets: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Resources of ``include.source_type`` whose parameter references a matched resource."""
    wanted = [key for key in targets if not include.target_type or key[0] == include.target_type]
    if not wanted:
        return set()
    ref = reference_table.c
    rows = connection.execute(
        select(ref.resource_type, ref.resource_id).where(
            ref.resource_type == include.source_type,
            ref.param == include.parameter.code,
            ref.target_base == "",
            tuple_(ref.target_type, ref.target_id).in_(wanted),
        )
    )
    return {(row.resource_type, row.resource_id) for row in rows}


@dataclass(frozen=True)
class _OrderKey:
    """One ORDER BY term: what to sort on and which way."""

    column: Any
    descending: bool = False
    nulls_last: bool = False

    def applied(self, column: Any) -> Any:
        """``column`` (this key's or a copy of it from a subquery), ordered this key's way."""
        ordered = column.desc() if self.descending else column.asc()
        return ordered.nulls_last() if self.nulls_last else ordered


def _order(
    request: SearchRequest, *, indexed_time: bool = True, inbox: bool = False
) -> list[_OrderKey]:
    """The sort keys, then ``_id``. In an inbox search, lastUpdated and id are read from the
    task_party row (copies of the resource's), whose inbox index holds them in order: ordered
    by the resource's, PostgreSQL walked every Task newest-last to find a recent page."""
    keys = request.sort or []
    if inbox:
        last_updated, resource_id = TP.last_updated, TP.task_id
    else:
        last_updated = R.last_updated if indexed_time else R.last_updated + 0
        resource_id = R.id
    order = [_sort_key(request.resource_type, key, last_updated, resource_id) for key in keys]
    if not keys:
        order.append(_OrderKey(last_updated))
    order.append(_OrderKey(resource_id))
    return order


def _sort_key(resource_type: str, key: SortKey, last_updated: Any, resource_id: Any) -> _OrderKey:
    parameter = key.parameter
    if parameter.type == "last-updated":
        return _OrderKey(last_updated, key.descending)
    if parameter.type == "id":
        return _OrderKey(resource_id, key.descending)
    d = date_table.c
    bound = func.max(d.high) if key.descending else func.min(d.low)
    column = (
        select(bound)
        .where(d.resource_type == resource_type, d.resource_id == R.id, d.param == parameter.code)
        .scalar_subquery()
    )
    # resources without the date sort last either way
    return _OrderKey(column, key.descending, nulls_last=True)


def _criterion(
    resource_type: str, criterion: Criterion, *, probe: bool, id_column: Any = None
) -> ColumnElement[bool]:
    """``criterion`` on the resource whose id is ``id_column`` (the searched one by default)."""
    resource_id = R.id if id_column is None else id_column
    parameter = criterion.parameter
    if criterion.modifier == "chain":
        return _chain(resource_type, criterion, resource_id)
    if parameter.type == "id":
        return as_condition(resource_id.in_([str(v) for v in criterion.values]))
    if parameter.type == "last-updated":
        return or_(
            *(
                date_match(R.last_updated, R.last_updated, v)
                for v in criterion.values
                if isinstance(v, DateQuery)
            )
        )
    table = {
        "token": token_table,
        "uri": token_table,
        "reference": reference_table,
        "date": date_table,
        "string": string_table,
    }[parameter.type]
    c = table.c
    scope = [c.resource_type == resource_type, c.param == parameter.code]
    if criterion.modifier != "missing":
        scope.append(
            or_(*(_value_match(parameter.type, criterion.modifier, c, v) for v in criterion.values))
        )
    if probe:
        present = exists(select(1).where(c.resource_id == resource_id, *scope))
    else:
        present = resource_id.in_(select(c.resource_id).where(*scope))
    absent = criterion.modifier == "not" or (
        criterion.modifier == "missing" and criterion.values[0] is True
    )
    return as_condition(not_(present) if absent else present)


def _chain(resource_type: str, criterion: Criterion, resource_id: Any) -> ColumnElement[bool]:
    """The searched resource references, through ``criterion.parameter``, a local resource of
    the chain's type that matches the chain's own criterion."""
    chain = criterion.values[0]
    assert isinstance(chain, ChainQuery)
    ref = reference_table.alias()
    return as_condition(
        exists(
            select(1).where(
                ref.c.resource_type == resource_type,
                ref.c.resource_id == resource_id,
                ref.c.param == criterion.parameter.code,
                ref.c.target_base == "",
                ref.c.target_type == chain.target_type,
                _criterion(
                    chain.target_type, chain.criterion, probe=True, id_column=ref.c.target_id
                ),
            )
        )
    )


def _value_match(kind: str, modifier: str | None, c: Any, value: Any) -> ColumnElement[bool]:
    if kind == "token":
        return _token_match(c, value)
    if kind == "uri":
        return as_condition(and_(c.system == "", c.code == str(value)[:TOKEN_INDEX_LENGTH]))
    if kind == "reference":
        return _reference_match(c, value)
    if kind == "date":
        return date_match(c.low, c.high, value)
    return _string_match(c, modifier, str(value))


def _token_match(c: Any, value: TokenQuery) -> ColumnElement[bool]:
    conditions = []
    if value.code is not None:
        conditions.append(c.code == value.code[:TOKEN_INDEX_LENGTH])
    if value.system is not None:
        conditions.append(c.system == value.system[:TOKEN_INDEX_LENGTH])
    return and_(*conditions) if conditions else true()


def _reference_match(c: Any, value: ReferenceQuery) -> ColumnElement[bool]:
    conditions = [c.target_id == value.target_id, c.target_base == value.target_base]
    if value.target_type:
        conditions.append(c.target_type == value.target_type)
    return and_(*conditions)


def _string_match(c: Any, modifier: str | None, text: str) -> ColumnElement[bool]:
    if modifier == "exact":
        return as_condition(c.exact == text[:200])
    pattern = _escape_like(normalise_string(text))
    if modifier == "contains":
        return as_condition(c.normalised.like(f"%{pattern}%", escape="\\"))
    return as_condition(c.normalised.like(f"{pattern}%", escape="\\"))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
