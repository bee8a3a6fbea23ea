"""What a write's body yields without the database, worked out before the write queues for
SQLite's writer lock, which every other server process is then waiting for: its search-index
values and the local references the write must find stored.
"""

from dataclasses import dataclass
from typing import Any

from conformance.errors import GatewayError
from conformance.search_index import IndexEntries, extract_index
from gateway.fhir.reference_integrity import ReferenceTarget, local_targets


@dataclass(frozen=True)
class PreparedBody:
    entries: IndexEntries
    targets: list[ReferenceTarget]
    """``local_targets`` of the body: (FHIRPath, (type, id)) of each local reference."""


def prepare_body(
    resource: dict[str, Any], *, local_base: str, root: str | None = None
) -> PreparedBody | None:
    """``resource``'s index values and local references; None when a reference is refused, so
    that the write reports it where it always has, after the checks that come before it.

    Neither depends on the resource's id, version or time: the caller may prepare a body
    before the server gives it those, but not before its references are final.
    """
    try:
        targets = local_targets(resource, local_base=local_base, root=root)
    except GatewayError:
        return None
    local_references = [key for _, key in targets]  # the walk extract_index would repeat
    entries = extract_index(resource, local_base=local_base, local_references=local_references)
    return PreparedBody(entries, targets)
