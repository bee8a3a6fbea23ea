"""``loopgate outbox list | retry | purge``: the operator's view of the outbox (no payloads)."""

import argparse
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy import Engine

from gateway.fhir.write_context import now_us
from gateway.outbox.admin import (
    MessageSummary,
    get_message,
    list_messages,
    purge_messages,
    retry_dead,
    retry_message,
)
from gateway.outbox.messages import DELIVERED, STATUSES
from gateway.outbox.retry_policy import MICROS
from gateway.store.engine import read_transaction, write_transaction

DAY_US = 86_400 * MICROS


def add_outbox_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    outbox = commands.add_parser("outbox", help="inspect, retry and purge outbound messages")
    actions = outbox.add_subparsers(dest="outbox_command", required=True)
    listing = actions.add_parser("list", help="list messages, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, default=50)
    retrying = actions.add_parser("retry", help="make a dead or failing message due now")
    which = retrying.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the message id")
    which.add_argument("--dead", action="store_true", help="every dead message")
    purging = actions.add_parser("purge", help="delete old delivered (and dead) messages")
    purging.add_argument("--delivered-older-than", type=float, metavar="DAYS")
    purging.add_argument("--dead-older-than", type=float, metavar="DAYS")


def run_outbox_command(
    engine: Engine, args: argparse.Namespace, *, out: TextIO, err: TextIO
) -> int:
    now = now_us()
    if args.outbox_command == "list":
        with read_transaction(engine) as connection:
            messages = list_messages(connection, now=now, status=args.status, limit=args.limit)
        print(format_table(messages), file=out)
        return 0
    if args.outbox_command == "retry":
        return _retry(engine, args, now=now, out=out, err=err)
    if args.delivered_older_than is None and args.dead_older_than is None:
        print("loopgate: give --delivered-older-than DAYS and/or --dead-older-than DAYS", file=err)
        return 2
    with write_transaction(engine) as connection:
        purged = purge_messages(
            connection,
            delivered_before=_days_ago(args.delivered_older_than, now),
            dead_before=_days_ago(args.dead_older_than, now),
        )
    print(f"purged {purged} messages", file=out)
    return 0


def _retry(engine: Engine, args: argparse.Namespace, *, now: int, out: TextIO, err: TextIO) -> int:
    with write_transaction(engine) as connection:
        if args.dead:
            print(f"{retry_dead(connection, now=now)} dead messages are due again", file=out)
            return 0
        if retry_message(connection, args.id, now=now):
            print(f"{args.id} is due again", file=out)
            return 0
        found = get_message(connection, args.id, now=now)
    if found is not None and found.status == DELIVERED:
        print(f"loopgate: {args.id} was delivered; nothing to retry", file=err)
    else:
        print(f"loopgate: no outbox message {args.id}", file=err)
    return 1


def _days_ago(days: float | None, now: int) -> int | None:
    return None if days is None else now - int(days * DAY_US)


def format_time(epoch_us: int | None) -> str:
    if epoch_us is None:
        return "-"
    return datetime.fromtimestamp(epoch_us / MICROS, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


HEADINGS = (
    "ID",
    "KIND",
    "DESTINATION",
    "ORDERING KEY",
    "STATUS",
    "ATTEMPTS",
    "CREATED",
    "NEXT / DONE",
    "LAST ERROR",
)


def format_table(messages: list[MessageSummary]) -> str:
    rows = [HEADINGS]
    for message in messages:
        status = "in flight" if message.in_flight else message.status
        done = message.delivered_at or message.dead_at
        rows.append(
            (
                message.id,
                message.kind,
                message.destination,
                message.ordering_key or "-",
                status,
                str(message.attempts),
                format_time(message.created_at),
                format_time(done if done is not None else message.next_attempt_at),
                message.last_error or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADINGS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
