"""Create or upgrade the database schema with Alembic, before any worker starts serving."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from gateway.store.engine import write_transaction

SCRIPT_LOCATION = "gateway.store:migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def upgrade_database(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to run from several processes at once."""
    config = alembic_config()
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


def make_revision(engine: Engine, message: str) -> None:
    """Autogenerate a new revision from the table definitions (a developer tool)."""
    config = alembic_config()
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
