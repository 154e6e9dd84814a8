"""Alembic upgrades run by the daemon itself, on its own engine, inside its event loop."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

# Daemons sharing one PostgreSQL may start together; the lock keeps them from creating the
# same tables at once. SQLite serves one process, so it needs none.
_SCHEMA_LOCK_KEY = 7460313  # an arbitrary number of our own


def script_location() -> str:
    """The migrations directory: packaged as ``monitor.migrations``, or beside a checkout."""
    try:
        return str(resources.files("monitor.migrations"))
    except ModuleNotFoundError:
        # A source tree that was never pip-installed lacks the pyproject package-dir mapping.
        return str(Path(__file__).resolve().parents[2] / "migrations")


def alembic_config() -> Config:
    """An Alembic config built in code, so an installed daemon needs no alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    return cfg


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; a no-op when it is there already."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, alembic_config())


def _upgrade(connection: Connection, cfg: Config) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
    cfg.attributes["connection"] = connection  # env.py runs on this connection
    command.upgrade(cfg, "head")
