"""A real, throwaway PostgreSQL server for the tests, started from the local binaries.

``MONITOR_TEST_POSTGRES_URL`` points the tests at an existing server instead (PostgreSQL
14 or newer, as a user who may create databases). Without binaries the tests that need
PostgreSQL are skipped, unless ``MONITOR_REQUIRE_POSTGRES=1`` (as in CI) makes them fail.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine

URL_VARIABLE = "MONITOR_TEST_POSTGRES_URL"
REQUIRE_VARIABLE = "MONITOR_REQUIRE_POSTGRES"
SUPERUSER = "postgres"
DATABASE = "monitor_test"
# Debian installs major versions side by side: /usr/lib/postgresql/<version>/bin.
DEBIAN_VERSIONS = Path("/usr/lib/postgresql")


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a ``postgresql+asyncpg://`` URL of a database on a running server."""
    url = os.environ.get(URL_VARIABLE)
    if url:
        yield url
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = f"no PostgreSQL (initdb, pg_ctl) on PATH or in {DEBIAN_VERSIONS}/*/bin"
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"{message}, and {REQUIRE_VARIABLE}=1", pytrace=False)
        pytest.skip(message)
    with _temporary_server(bin_dir) as port:
        createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port)]
        _run([*createdb, "-U", SUPERUSER, DATABASE])
        yield f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"


def find_bin_dir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: from PATH, else Debian's newest."""
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("pg_ctl") is not None:
        return Path(on_path).resolve().parent
    bin_dirs = [initdb.parent for initdb in DEBIAN_VERSIONS.glob("*/bin/initdb")]
    return max(bin_dirs, key=_version, default=None)


def _version(bin_dir: Path) -> list[int]:
    return [int(number) for number in re.findall(r"\d+", bin_dir.parent.name)]  # "15", "9.6"


@contextmanager
def _temporary_server(bin_dir: Path) -> Iterator[int]:
    """initdb into a temporary directory, serve on 127.0.0.1 only, stop and delete at the end."""
    root = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
    data = root / "data"
    as_owner = _as_postgres_user(root)
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust"]
        _run([*as_owner, *initdb, "--encoding=UTF8", "--no-sync"], cwd=root)
        port = free_port()
        # Durability is pointless for a throwaway server; the socket stays in our directory.
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
        log = root / "server.log"
        _run([*pg_ctl, "-l", str(log), "-o", options, "start"], cwd=root, server_log=log)
        try:
            yield port
        finally:
            _run([*pg_ctl, "-m", "fast", "stop"], cwd=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _as_postgres_user(root: Path) -> list[str]:
    """PostgreSQL refuses to run as root: hand the directory to the ``postgres`` user."""
    if os.geteuid() != 0:
        return []
    shutil.chown(root, user=SUPERUSER)
    return ["runuser", "-u", SUPERUSER, "--"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(command: list[str], *, cwd: Path | None = None, server_log: Path | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        return
    details = done.stdout + done.stderr
    if server_log is not None and server_log.exists():
        details += server_log.read_text()
    pytest.fail(f"{' '.join(command)} failed with {done.returncode}:\n{details}", pytrace=False)


@asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """Create an empty database with a unique name on the server; drop it afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                # FORCE: a failed test may have left connections open.
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()
