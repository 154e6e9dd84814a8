"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from monitor.store import SqlStore
from tests.support.postgres import fresh_database, postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database on a real PostgreSQL server shared by the whole test session."""
    with postgres_server() as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database on each backend the Store supports."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}"
    else:
        async with fresh_database(request.getfixturevalue("postgres_url")) as url:
            yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    """A migrated SqlStore on each backend."""
    store = SqlStore(store_url)
    await store.upgrade()
    yield store
    await store.close()
