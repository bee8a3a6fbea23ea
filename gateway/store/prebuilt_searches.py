"""The commonest searches through statements compiled once per shape, run by the driver.

Most searches name a token (``Patient?identifier=system|code``) or a reference
(``Observation?subject=Patient/1``), or a few of them (``Task?patient=…&status=…``), in the
default order, by an organization or by anyone. Building such a search's query and
SQLAlchemy's cache key for it cost more than running it.
Here ``search_query.page_query`` (``count_query`` for a total) itself builds each shape's
query once, from stand-in values; once compiled, the statement runs with the request's own
values put where the stand-ins were. A shape whose SQL would use a value other than as given
is left to the general query.
"""

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from conformance.search_index import TOKEN_INDEX_LENGTH
from conformance.search_parameters import SearchParameter
from conformance.search_request import Criterion, ReferenceQuery, SearchRequest, TokenQuery
from gateway.access.policy import AccessFilter
from gateway.store import driver, search_query
from gateway.store.driver import Statement
from gateway.store.resource_rows import StoredVersion
from gateway.store.search_query import QMARK_DIALECTS, VISIBLE_TO, count_query, page_query
from gateway.store.task_inbox import inbox_range


@dataclass(frozen=True)
class _CriterionShape:
    """One criterion of a prebuilt shape: its parameter and which of its values it gives."""

    parameter: SearchParameter
    code_given: bool = False
    system_given: bool = False
    target_type: str | None = None
    local: bool = True
    """A reference to this server's own resources (``target_base`` empty)."""


@dataclass(frozen=True)
class _Shape:
    """Everything a prebuilt search's SQL depends on; the rest are its values."""

    dialect: str
    resource_type: str
    criteria: tuple[_CriterionShape, ...]
    organization: bool
    """Only what the organization bound as ``visible_to`` sees."""


@dataclass(frozen=True)
class _Prebuilt:
    statement: Statement
    sources: tuple[tuple[str | None, Any], ...]
    """Per placeholder: the name of the request's value it takes, or (None, a constant)."""


MAX_CRITERIA = 3
"""More criteria than this go to the general query: each combination is a shape of its own."""
_COUNT, _OFFSET = "count", "offset"
_NUMBER_STAND_INS = {_COUNT: 987_654_321, _OFFSET: 987_654_323}
_STAND_IN_MARK = "\x00stand-in"


def _stand_in(name: str) -> Any:
    """The value ``page_query`` is given for the value called ``name``."""
    return _NUMBER_STAND_INS.get(name, f"{_STAND_IN_MARK} {name}\x00")


def find_matches(
    connection: Connection, request: SearchRequest, access: AccessFilter | None = None
) -> list[StoredVersion]:
    """One page of matching resources, prebuilt when the request's shape is one."""
    found = matches(connection, request, access)
    return search_query.find_matches(connection, request, access) if found is None else found


def count_matches(
    connection: Connection, request: SearchRequest, access: AccessFilter | None = None
) -> int:
    """How many resources match, prebuilt when the request's shape is one."""
    counted = count(connection, request, access)
    return search_query.count_matches(connection, request, access) if counted is None else counted


def matches(
    connection: Connection, request: SearchRequest, access: AccessFilter | None
) -> list[StoredVersion] | None:
    """``search_query.find_matches`` for a request of a prebuilt shape; None for any other."""
    rows = _rows(connection, request, access, counting=False)
    if rows is None:
        return None
    return [StoredVersion(t, i, v, u, bool(d), b) for t, i, v, u, d, b in rows]


def count(
    connection: Connection, request: SearchRequest, access: AccessFilter | None
) -> int | None:
    """``search_query.count_matches`` for a request of a prebuilt shape; None for any other."""
    rows = _rows(connection, request, access, counting=True)
    return None if rows is None else int(rows[0][0])


def _rows(
    connection: Connection,
    request: SearchRequest,
    access: AccessFilter | None,
    *,
    counting: bool,
) -> list[tuple[Any, ...]] | None:
    picked = _shape_of(request, access, connection.dialect.name)
    if picked is None:
        return None
    shape, values = picked
    prebuilt = _prebuilt(shape, counting=counting)
    if prebuilt is None:
        return None
    params = [values[name] if name is not None else value for name, value in prebuilt.sources]
    return driver.rows(connection, prebuilt.statement, params)


def _shape_of(
    request: SearchRequest, access: AccessFilter | None, dialect: str
) -> tuple[_Shape, dict[str, Any]] | None:
    """The request's shape and values, if it is one of the prebuilt kinds."""
    if request.sort or not 0 < len(request.criteria) <= MAX_CRITERIA:
        return None
    if access is not None and access.groups is not None:
        return None  # a scope's own criteria: any number of shapes
    if inbox_range(request.resource_type, request.criteria) is not None:
        return None  # a Task inbox: task_party's rows decide it
    organization = access.organization if access is not None else None
    values: dict[str, Any] = {_COUNT: request.count, _OFFSET: request.offset}
    if organization is not None:
        values[VISIBLE_TO] = organization
    criteria = []
    for position, criterion in enumerate(request.criteria):
        shape = _criterion_shape(criterion, position, values)
        if shape is None:
            return None
        criteria.append(shape)
    return _Shape(dialect, request.resource_type, tuple(criteria), organization is not None), values


def _criterion_shape(
    criterion: Criterion, position: int, values: dict[str, Any]
) -> _CriterionShape | None:
    """The criterion's shape, its values added to ``values``; None if it is not prebuilt."""
    if criterion.modifier is not None or len(criterion.values) != 1:
        return None
    [value] = criterion.values
    parameter = criterion.parameter
    if parameter.type == "token" and isinstance(value, TokenQuery):
        given = {_name(position, "code"): value.code, _name(position, "system"): value.system}
        if any(v is not None and len(v) > TOKEN_INDEX_LENGTH for v in given.values()):
            return None  # the index keeps a prefix; the general query cuts the value to it
        values.update((k, v) for k, v in given.items() if v is not None)
        return _CriterionShape(
            parameter, code_given=value.code is not None, system_given=value.system is not None
        )
    if parameter.type == "reference" and isinstance(value, ReferenceQuery):
        values[_name(position, "target_id")] = value.target_id
        local = not value.target_base
        if not local:
            values[_name(position, "target_base")] = value.target_base
        return _CriterionShape(parameter, target_type=value.target_type, local=local)
    return None


def _name(position: int, field: str) -> str:
    return f"{position}:{field}"


@functools.lru_cache(maxsize=512)
def _prebuilt(shape: _Shape, *, counting: bool) -> _Prebuilt | None:
    """The shape's page (or count) statement, built by ``page_query`` (``count_query``) from
    stand-ins; None if its SQL would use a value other than as given (cut, escaped, looked
    at)."""
    criteria = [
        Criterion(criterion.parameter, None, (_stand_in_value(position, criterion),))
        for position, criterion in enumerate(shape.criteria)
    ]
    request = SearchRequest(
        shape.resource_type,
        criteria,
        count=_stand_in(_COUNT),
        offset=_stand_in(_OFFSET),
    )
    organization = _stand_in(VISIBLE_TO) if shape.organization else None
    access = AccessFilter(shape.resource_type, None, organization)
    query, bound = (
        count_query(request, access)
        if counting
        else page_query(request, access, sqlite=shape.dialect == "sqlite")
    )
    compiled = query.compile(dialect=QMARK_DIALECTS[shape.dialect])
    given = {**compiled.params, **bound}
    by_stand_in = {_stand_in(name): name for name in _value_names(shape)}
    sources: list[tuple[str | None, Any]] = []
    for name in compiled.positiontup or ():
        value_given = given[name]
        if isinstance(value_given, (str, int)) and value_given in by_stand_in:
            sources.append((by_stand_in[value_given], None))
        elif isinstance(value_given, str) and _STAND_IN_MARK in value_given:
            return None  # a stand-in the query changed: only the general path knows how
        elif isinstance(value_given, int) and _near_a_stand_in(value_given):
            return None  # a number worked out from one (a page of count + 1, say): the same
        else:
            sources.append((None, value_given))
    used = {name for name, _ in sources} - {None}
    expected = set(_value_names(shape)) - ({_COUNT, _OFFSET} if counting else set())
    if VISIBLE_TO not in used:
        expected.discard(VISIBLE_TO)  # a type every organization sees: one SQL for them all
    if used != expected or _STAND_IN_MARK in str(compiled):
        return None  # a value written into the SQL text, or never used: not a shape of ours
    # unprepared on PostgreSQL: planned for each request's own values, as the general query is
    return _Prebuilt(Statement(str(compiled), prepare=False), tuple(sources))


def _stand_in_value(position: int, criterion: _CriterionShape) -> TokenQuery | ReferenceQuery:
    """The criterion's value as ``page_query`` is given it, stand-ins in place of its own."""
    if criterion.parameter.type == "token":
        return TokenQuery(
            system=_stand_in(_name(position, "system")) if criterion.system_given else None,
            code=_stand_in(_name(position, "code")) if criterion.code_given else None,
        )
    return ReferenceQuery(
        target_type=criterion.target_type,
        target_id=_stand_in(_name(position, "target_id")),
        target_base="" if criterion.local else _stand_in(_name(position, "target_base")),
    )


def _value_names(shape: _Shape) -> list[str]:
    """Every value a request of ``shape`` has (``_shape_of``'s keys)."""
    names = [_COUNT, _OFFSET]
    if shape.organization:
        names.append(VISIBLE_TO)
    for position, criterion in enumerate(shape.criteria):
        if criterion.parameter.type == "token":
            names += [_name(position, "code")] if criterion.code_given else []
            names += [_name(position, "system")] if criterion.system_given else []
        else:
            names.append(_name(position, "target_id"))
            names += [] if criterion.local else [_name(position, "target_base")]
    return names


def _near_a_stand_in(number: int) -> bool:
    return any(abs(number - stand_in) < 1_000_000 for stand_in in _NUMBER_STAND_INS.values())
