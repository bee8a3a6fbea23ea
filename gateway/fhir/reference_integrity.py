"""Every local reference in a write must resolve to a stored resource (referencePolicy=literal).

Malformed references and unresolved ``urn:uuid:`` placeholders are 400; a well-formed reference
to a local resource that does not exist, or to a type Loopgate does not store, is 422. Absolute
references to other servers are kept as they are: Gravity points across servers (gravity.md P-4).
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from conformance.errors import BadRequest, Issue, Unprocessable, raise_if_issues
from conformance.references import scan_references
from conformance.resource_types import is_supported
from gateway.store import resource_rows

ReferenceTarget = tuple[str, tuple[str, str]]


def rooted(path: str, resource_type: str, root: str | None) -> str:
    return root + path[len(resource_type) :] if root and path.startswith(resource_type) else path


def local_targets(
    resource: dict[str, Any], *, local_base: str, root: str | None = None
) -> list[ReferenceTarget]:
    """The local references to verify, after rejecting malformed and unsupported ones."""
    resource_type = str(resource["resourceType"])
    scan = scan_references(resource, local_base=local_base)
    bad = [
        Issue(
            "This is not a valid reference (Type/id or an absolute URL)",
            (rooted(p, resource_type, root),),
            "value",
        )
        for p in scan.malformed
    ] + [
        Issue(
            "urn:uuid: and urn:oid: references resolve only inside a transaction Bundle",
            (rooted(p, resource_type, root),),
            "value",
        )
        for p in scan.placeholders
    ]
    raise_if_issues(bad, BadRequest)
    unsupported = [
        Issue(
            f"Loopgate does not store {ref.resource_type} resources; reference it by the "
            "absolute URL of the server that holds it",
            (rooted(path, resource_type, root),),
            "not-supported",
        )
        for path, ref in scan.local
        if not is_supported(ref.resource_type)
    ]
    raise_if_issues(unsupported, Unprocessable)
    return [
        (rooted(path, resource_type, root), (ref.resource_type, ref.id)) for path, ref in scan.local
    ]


def verify_targets_exist(
    connection: Connection, targets: Sequence[ReferenceTarget], *, written: set[tuple[str, str]]
) -> None:
    """Raise 422 naming each reference whose target is not stored (or was deleted)."""
    wanted = {key for _, key in targets if key not in written}
    if not wanted:
        return
    found = resource_rows.existing_keys(connection, wanted)
    missing = [
        Issue(f"The referenced {key[0]} is not stored on Loopgate", (path,), "not-found")
        for path, key in targets
        if key in wanted and key not in found
    ]
    raise_if_issues(missing, Unprocessable)
