"""Throwaway databases: a temp SQLite file, or a uniquely named PostgreSQL database (dropped)."""

import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from gateway.store.engine import is_sqlite, make_engine
from gateway.store.migrate import upgrade_database
from gateway.store.tables import INDEX_TABLES, resource_table, version_table

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


class Database:
    """One fresh database; ``url`` is what LOOPGATE_DATABASE_URL gets."""

    def __init__(self, backend: str, workdir: Path, label: str, postgres_admin_url: str) -> None:
        self.backend = backend
        self.admin_url = postgres_admin_url
        self.name = f"loopgate_bench_{os.getpid()}_{secrets.token_hex(4)}_{label}"
        if backend == "sqlite":
            self.path = workdir / f"{self.name}.db"
            self.url = f"sqlite:///{self.path}"
        else:
            with psycopg.connect(self.admin_url, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{self.name}"')  # type: ignore[arg-type]
            base = self.admin_url.rsplit("/", 1)[0].replace(
                "postgresql://", "postgresql+psycopg://"
            )
            self.url = f"{base}/{self.name}"
        self.created = True

    def migrate(self) -> None:
        engine = make_engine(self.url)
        try:
            upgrade_database(engine)
        finally:
            engine.dispose()

    def drop(self) -> None:
        if not self.created:
            return
        self.created = False
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')  # type: ignore[arg-type]


def analyze(engine: Engine) -> None:
    """PostgreSQL only: refresh planner statistics after the bulk load, as autovacuum would
    shortly after 100k+ inserts. SQLite is left as the product leaves it (no ANALYZE)."""
    if is_sqlite(engine):
        return
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def row_counts(engine: Engine) -> dict[str, int]:
    counts = {}
    with engine.connect() as connection:
        for table in (version_table, resource_table, *INDEX_TABLES):
            counts[table.name] = int(
                connection.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one()
            )
    return counts


def database_size_mb(database: Database, engine: Engine) -> float:
    if database.backend == "sqlite":
        return (
            sum(
                Path(f"{database.path}{s}").stat().st_size
                for s in ("", "-wal")
                if Path(f"{database.path}{s}").exists()
            )
            / 1e6
        )
    with engine.connect() as connection:
        size: Any = connection.execute(
            text("SELECT pg_database_size(current_database())")
        ).scalar_one()
    return float(size) / 1e6


def versions(postgres_admin_url: str | None) -> dict[str, str]:
    out = {"sqlite": sqlite3.sqlite_version}
    if postgres_admin_url:
        try:
            with psycopg.connect(postgres_admin_url, connect_timeout=3) as connection:
                row = connection.execute("SHOW server_version").fetchone()
                out["postgres"] = str(row[0]) if row else "?"
                settings = connection.execute(
                    "SELECT name, setting, unit FROM pg_settings WHERE name IN "
                    "('shared_buffers','synchronous_commit','fsync','max_connections')"
                ).fetchall()
                out["postgres_settings"] = ", ".join(f"{n}={s}{u or ''}" for n, s, u in settings)
        except psycopg.Error as error:
            out["postgres"] = f"unavailable ({type(error).__name__})"
    return out
