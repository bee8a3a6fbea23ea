"""``loopgate api-key create | list | revoke``: an organization's API keys from the shell.

``create`` prints the key once on standard output (nothing else), so it can be captured:
``KEY=$(loopgate api-key create Organization/cbo-1)``.
"""

import argparse
from typing import TextIO

from sqlalchemy import Engine

from conformance.fhir_time import format_instant
from gateway.partners.api_keys import list_api_keys, new_api_key, revoke_api_key, store_api_key
from gateway.store import resource_rows
from gateway.store.engine import read_transaction, write_transaction


def add_api_key_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    keys = commands.add_parser("api-key", help="issue, list and revoke partner API keys")
    actions = keys.add_subparsers(dest="api_key_command", required=True)
    create = actions.add_parser("create", help="issue a key for an organization; prints it once")
    create.add_argument("organization", help="e.g. Organization/cbo-1 (or just cbo-1)")
    create.add_argument("--label", help="what the key is for, e.g. 'case management system'")
    listing = actions.add_parser("list", help="an organization's keys (never the keys)")
    listing.add_argument("organization")
    revoke = actions.add_parser("revoke", help="revoke one key by its id")
    revoke.add_argument("organization")
    revoke.add_argument("key_id")


def run_api_key_command(
    engine: Engine, args: argparse.Namespace, *, out: TextIO, err: TextIO
) -> int:
    organization = _organization(args.organization)
    if organization is None:
        print(f"loopgate: {args.organization!r} is not an Organization reference", file=err)
        return 2
    if args.api_key_command == "create":
        key = new_api_key()
        with write_transaction(engine) as connection:
            stored = resource_rows.current(connection, *organization.split("/"))
            if stored is None or stored.deleted:
                print(f"loopgate: {organization} is not stored on Loopgate", file=err)
                return 2
            store_api_key(connection, organization, key, label=args.label)
        print(key, file=out)
        return 0
    if args.api_key_command == "list":
        with read_transaction(engine) as connection:
            found = list_api_keys(connection, organization)
        for item in found:
            state = f"revoked {format_instant(item.revoked_at)}" if item.revoked_at else "active"
            used = format_instant(item.last_used_at) if item.last_used_at else "never used"
            print(f"{item.id}  {item.prefix}…  {state}  {used}  {item.label or ''}", file=out)
        return 0
    with write_transaction(engine) as connection:
        revoked = revoke_api_key(connection, organization, args.key_id)
    if not revoked:
        print(f"loopgate: {organization} has no active key {args.key_id}", file=err)
        return 1
    print(f"revoked {args.key_id}", file=out)
    return 0


def _organization(value: str) -> str | None:
    reference = value if "/" in value else f"Organization/{value}"
    resource_type, _, resource_id = reference.partition("/")
    if resource_type != "Organization" or not resource_id or "/" in resource_id:
        return None
    return reference
