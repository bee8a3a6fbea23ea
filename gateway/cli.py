"""The ``loopgate`` command: serve, migrate, provision, demo, outbox, api-key."""

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from gateway.logs import configure_logging
from gateway.outbox.commands import add_outbox_commands, run_outbox_command
from gateway.partners.commands import add_api_key_commands, run_api_key_command
from gateway.provisioning import ProvisioningError, provision_database, read_provisioning_file
from gateway.settings import Settings, get_settings
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade_database
from smart_auth import ProvisioningError as SmartProvisioningError

log = logging.getLogger("loopgate")


def migrate(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()


def provision(settings: Settings, path: Path) -> None:
    """Apply a provisioning file: resources in one transaction, then users and clients."""
    provisioning = read_provisioning_file(path)
    result = provision_database(settings, provisioning)
    log.info(
        "Provisioned %s: %d new resources, %d already there, %d users, %d clients",
        path,
        result.created,
        result.existing,
        len(provisioning.users),
        len(provisioning.clients),
    )


def serve(settings: Settings) -> None:
    import uvicorn

    migrate(settings)
    if settings.provision_file is not None:
        provision(settings, settings.provision_file)
    log.info(
        "Loopgate listening on http://%s:%s (FHIR base %s), database %s",
        settings.host if ":" not in settings.host else f"[{settings.host}]",
        settings.port,
        settings.fhir_base,
        settings.database_label,
    )
    uvicorn.run(
        "gateway.app:create_app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        # open event streams would otherwise hold a graceful shutdown open for ever
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )


def demo(settings: Settings) -> None:
    from gateway.demo import run_demo

    migrate(settings)
    run_demo(settings, out=sys.stdout)


def outbox(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    try:
        return run_outbox_command(engine, args, out=sys.stdout, err=sys.stderr)
    finally:
        engine.dispose()


def api_key(settings: Settings, args: argparse.Namespace) -> int:
    migrate(settings)
    engine = make_engine(settings.database_url)
    try:
        return run_api_key_command(engine, args, out=sys.stdout, err=sys.stderr)
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loopgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="migrate the database, then serve Loopgate")
    commands.add_parser("migrate", help="create or upgrade the database schema")
    provisioning = commands.add_parser("provision", help="apply a provisioning file")
    provisioning.add_argument("file", type=Path)
    commands.add_parser("demo", help="seed a sandbox network and print the referral loop")
    add_outbox_commands(commands)
    add_api_key_commands(commands)
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as error:
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"]) or "settings"
            print(f"loopgate: LOOPGATE_{field.upper()}: {problem['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        if args.command == "provision":
            migrate(settings)
            provision(settings, args.file)
        elif args.command == "outbox":
            return outbox(settings, args)
        elif args.command == "api-key":
            return api_key(settings, args)
        else:
            {"serve": serve, "migrate": migrate, "demo": demo}[args.command](settings)
    except (ProvisioningError, SmartProvisioningError) as error:
        print(f"loopgate: provisioning refused: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
