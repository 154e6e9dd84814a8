"""A throwaway PostgreSQL server for the benchmark, as in tests/postgres.py: initdb into a
temporary directory as the ``postgres`` user (runuser), serve on 127.0.0.1 on a port of its
own with durability off, and stop it at the end."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from procs import free_port

SUPERUSER = "postgres"
DEBIAN_VERSIONS = Path("/usr/lib/postgresql")


@dataclass(frozen=True, slots=True)
class Server:
    bin_dir: Path
    root: Path
    port: int

    def psql(self, database: str, sql: str) -> str:
        """Run ``sql`` with psql; return its unaligned, tuples-only output."""
        return _run(
            [
                *self._as_owner(),
                str(self.bin_dir / "psql"),
                "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql,
            ]
        )  # fmt: skip

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its ``postgresql+asyncpg://`` URL."""
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def drop_database(self, name: str) -> None:
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def postmaster_pid(self) -> int:
        return int((self.root / "data" / "postmaster.pid").read_text().split()[0])

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", SUPERUSER, "--"] if os.geteuid() == 0 else []


def find_bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("pg_ctl") is not None:
        return Path(on_path).resolve().parent
    bin_dirs = [initdb.parent for initdb in DEBIAN_VERSIONS.glob("*/bin/initdb")]
    return max(bin_dirs, key=_version, default=None)


def _version(bin_dir: Path) -> list[int]:
    return [int(number) for number in re.findall(r"\d+", bin_dir.parent.name)]


@contextmanager
def server(root: Path) -> Iterator[Server]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(f"no PostgreSQL (initdb, pg_ctl) on PATH or in {DEBIAN_VERSIONS}")
    root.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(root, user=SUPERUSER)
    srv = Server(bin_dir, root, free_port())
    owner = srv._as_owner()
    data = root / "data"
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust"]
    _run([*owner, *initdb, "--encoding=UTF8", "--no-sync"], cwd=root)
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={srv.port} -c unix_socket_directories={root}"
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = [*owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    _run([*pg_ctl, "-l", str(root / "server.log"), "-o", options, "start"], cwd=root)
    try:
        yield srv
    finally:
        _run([*pg_ctl, "-m", "fast", "stop"], cwd=root)


def _run(command: list[str], *, cwd: Path | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with {done.returncode}:\n{done.stderr}")
    return done.stdout
