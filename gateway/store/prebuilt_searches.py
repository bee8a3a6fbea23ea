"""The commonest searches through statements compiled once per shape, run by the driver.

Most searches name one token (``Patient?identifier=system|code``) or one reference
(``Observation?subject=Patient/1``), in the default order, by an organization or by anyone.
Building such a search's query and SQLAlchemy's cache key for it cost more than running it.
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
class _Shape:
    """Everything a prebuilt search's SQL depends on; the rest are its values."""

    dialect: str
    resource_type: str
    parameter: SearchParameter
    code_given: bool
    system_given: bool
    target_type: str | None
    local: bool
    """A reference to this server's own resources (``target_base`` empty)."""
    organization: bool
    """Only what the organization bound as ``visible_to`` sees."""


@dataclass(frozen=True)
class _Prebuilt:
    statement: Statement
    sources: tuple[tuple[str | None, Any], ...]
    """Per placeholder: the name of the request's value it takes, or (None, a constant)."""


_CODE, _SYSTEM, _TARGET_ID, _TARGET_BASE = "code", "system", "target_id", "target_base"
_COUNT, _OFFSET = "count", "offset"
_STAND_INS: dict[str, Any] = {
    _CODE: "\x00stand-in code\x00",
    _SYSTEM: "\x00stand-in system\x00",
    _TARGET_ID: "\x00stand-in target id\x00",
    _TARGET_BASE: "\x00stand-in target base\x00",
    VISIBLE_TO: "\x00stand-in organization\x00",
    _COUNT: 987_654_321,
    _OFFSET: 987_654_323,
}


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
    if request.sort or len(request.criteria) != 1:
        return None
    if access is not None and access.groups is not None:
        return None  # a scope's own criteria: any number of shapes
    if inbox_range(request.resource_type, request.criteria) is not None:
        return None  # a Task inbox: task_party's rows decide it
    [criterion] = request.criteria
    if criterion.modifier is not None or len(criterion.values) != 1:
        return None
    organization = access.organization if access is not None else None
    values: dict[str, Any] = {_COUNT: request.count, _OFFSET: request.offset}
    if organization is not None:
        values[VISIBLE_TO] = organization
    [value] = criterion.values
    shape = functools.partial(
        _Shape,
        dialect,
        request.resource_type,
        criterion.parameter,
        organization=organization is not None,
    )
    if criterion.parameter.type == "token" and isinstance(value, TokenQuery):
        given = {_CODE: value.code, _SYSTEM: value.system}
        if any(v is not None and len(v) > TOKEN_INDEX_LENGTH for v in given.values()):
            return None  # the index keeps a prefix; the general query cuts the value to it
        values.update((k, v) for k, v in given.items() if v is not None)
        return shape(value.code is not None, value.system is not None, None, False), values
    if criterion.parameter.type == "reference" and isinstance(value, ReferenceQuery):
        values[_TARGET_ID] = value.target_id
        local = not value.target_base
        if not local:
            values[_TARGET_BASE] = value.target_base
        return shape(False, False, value.target_type, local), values
    return None


@functools.lru_cache(maxsize=512)
def _prebuilt(shape: _Shape, *, counting: bool) -> _Prebuilt | None:
    """The shape's page (or count) statement, built by ``page_query`` (``count_query``) from
    stand-ins; None if its SQL would use a value other than as given (cut, escaped, looked
    at)."""
    parameter = shape.parameter
    value: TokenQuery | ReferenceQuery
    if parameter.type == "token":
        value = TokenQuery(
            system=_STAND_INS[_SYSTEM] if shape.system_given else None,
            code=_STAND_INS[_CODE] if shape.code_given else None,
        )
    else:
        value = ReferenceQuery(
            target_type=shape.target_type,
            target_id=_STAND_INS[_TARGET_ID],
            target_base="" if shape.local else _STAND_INS[_TARGET_BASE],
        )
    request = SearchRequest(
        shape.resource_type,
        [Criterion(parameter, None, (value,))],
        count=_STAND_INS[_COUNT],
        offset=_STAND_INS[_OFFSET],
    )
    organization = _STAND_INS[VISIBLE_TO] if shape.organization else None
    access = AccessFilter(shape.resource_type, None, organization)
    query, bound = (
        count_query(request, access)
        if counting
        else page_query(request, access, sqlite=shape.dialect == "sqlite")
    )
    compiled = query.compile(dialect=QMARK_DIALECTS[shape.dialect])
    given = {**compiled.params, **bound}
    by_stand_in = {v: k for k, v in _STAND_INS.items()}
    sources: list[tuple[str | None, Any]] = []
    for name in compiled.positiontup or ():
        value_given = given[name]
        if isinstance(value_given, (str, int)) and value_given in by_stand_in:
            sources.append((by_stand_in[value_given], None))
        elif isinstance(value_given, str) and "\x00stand-in" in value_given:
            return None  # a stand-in the query changed: only the general path knows how
        elif isinstance(value_given, int) and _near_a_stand_in(value_given):
            return None  # a number worked out from one (a page of count + 1, say): the same
        else:
            sources.append((None, value_given))
    if {name for name, _ in sources} - {None} != _names(shape, counting=counting):
        return None  # a value written into the SQL text, or never used: not a shape of ours
    return _Prebuilt(Statement(str(compiled)), tuple(sources))


def _near_a_stand_in(number: int) -> bool:
    return any(
        abs(number - stand_in) < 1_000_000
        for stand_in in _STAND_INS.values()
        if isinstance(stand_in, int)
    )


def _names(shape: _Shape, *, counting: bool) -> set[str]:
    """The values a request of ``shape`` has (``_shape_of``'s keys) that its statement uses:
    a count has no page to take."""
    names = set() if counting else {_COUNT, _OFFSET}
    if shape.organization:
        names.add(VISIBLE_TO)
    if shape.parameter.type == "token":
        names |= {_CODE} if shape.code_given else set()
        names |= {_SYSTEM} if shape.system_given else set()
    else:
        names |= {_TARGET_ID} | (set() if shape.local else {_TARGET_BASE})
    return names
