"""Alembic environment.

The daemon passes its own connection in ``config.attributes["connection"]``; the
``alembic`` command line has none, so an engine is built from ``sqlalchemy.url``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import create_async_engine

from monitor.store.tables import UtcDateTime, metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write our UTC type as the plain type it stores, so revisions never import the app."""
    if kind == "type" and isinstance(obj, UtcDateTime):
        return f"sa.{obj.impl!r}"
    return False


async def run_on_own_engine(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
    else:
        url = context.config.get_main_option("sqlalchemy.url")
        if url is None:
            raise SystemExit("alembic: set sqlalchemy.url in alembic.ini")
        asyncio.run(run_on_own_engine(url))


main()
