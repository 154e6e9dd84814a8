"""The command line as a user meets it: exit codes, one-line errors, help, db upgrade."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import __version__
from monitor.cli import main

CONFIGS = Path(__file__).parents[1] / "configs"
INVALID = sorted(CONFIGS.glob("invalid-*.yaml"))
REPO = Path(__file__).parents[2]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_validate_broken_config_prints_one_line_and_exits_2(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "-c", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"monitor: {path}:")


def test_validate_as_a_process_has_no_traceback() -> None:
    broken = CONFIGS / "invalid-timeout-not-shorter.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "validate", "-c", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"monitor: {broken}:8: sites[1].timeout: must be shorter than interval (30s)\n"
    )


def test_validate_good_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-c", str(REPO / "config.example.yaml")]) == 0
    assert capsys.readouterr().out == f"{REPO / 'config.example.yaml'}: ok (2 sites, 0 checks)\n"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"monitor {__version__}\n"


@pytest.mark.parametrize(
    "argv", [["--help"], ["run", "--help"], ["validate", "--help"], ["db", "upgrade", "--help"]]
)
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert "usage: monitor" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["run"], ["frobnicate"], ["db"]], ids=str)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: monitor" in capsys.readouterr().err


def test_db_upgrade_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage:\n  url: sqlite+aiosqlite:///{db}\n"
        "sites:\n  - name: shop\n    url: https://shop.example.com/\n",
        encoding="utf-8",
    )
    assert main(["db", "upgrade", "-c", str(config)]) == 0
    assert "schema is up to date" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"monitors", "check_results", "alembic_version"} <= tables
