"""Command line: ``monitor run | validate | check | test-alert | db upgrade``; the one place
objects are wired."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor import __version__, logs
from monitor.app.shard import Shard
from monitor.config.load import Config, check_notifiers, load_config
from monitor.errors import ConfigError, StoreError
from monitor.judge.maintenance import Window

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # bad usage or a bad config


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args)
    if args.command == "run" and args.workers > 1:
        return _run_workers(args)
    try:
        config = load_config(args.config)
        check_notifiers(args.config, config)
    except ConfigError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command: str = args.command
    if command == "validate":
        return _validate(args.config, config)
    if command == "test-alert":
        return _test_alert(args.notifier, config)
    if command == "run":
        return _run(args, config)
    logs.configure(getattr(logging, args.log_level.upper()))
    return asyncio.run(_db_upgrade(config))


def _run_workers(args: argparse.Namespace) -> int:
    """The parent of ``--workers N``: it leaves reading the config to its children (a
    100,000-site file takes seconds and hundreds of MB that would stay in the parent)."""
    if args.shard is not None:
        print("monitor run: --workers and --shard do not go together", file=sys.stderr)
        return EXIT_USAGE
    from monitor.app.workers import run_workers

    logs.configure(getattr(logging, args.log_level.upper()))
    return run_workers(args.config, args.workers, args.log_level)


def _run(args: argparse.Namespace, config: Config) -> int:
    shard: Shard = args.shard or Shard()
    logs.configure(
        getattr(logging, args.log_level.upper()), worker=None if shard.whole else shard.label
    )
    from monitor.app.daemon import run_daemon  # heavy imports only for the daemon

    raise_open_files_limit()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(run_daemon(config, path=Path(args.config), shard=shard))


def raise_open_files_limit() -> None:
    """Every check in flight holds a socket: take the hard limit on open files, not the
    soft one (often 1,024), as servers do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (about a third less CPU a check), else asyncio's;
    MONITOR_EVENT_LOOP=asyncio chooses asyncio's anyway."""
    if os.environ.get("MONITOR_EVENT_LOOP", "") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _validate(path: str, config: Config) -> int:
    sites, checks = len(config.sites), len(config.checks)
    notifiers = len(config.alerts.notifiers)
    also = f", {notifiers} notifier{'s' if notifiers != 1 else ''}" if notifiers else ""
    print(
        f"{path}: ok ({sites} site{'s' if sites != 1 else ''}, "
        f"{checks} check{'s' if checks != 1 else ''}{also})"
    )
    return EXIT_OK


def _test_alert(name: str, config: Config) -> int:
    from monitor.alerts.apprise_send import send_test

    notifiers = {n.name: n for n in config.alerts.notifiers}
    if name not in notifiers:
        known = ", ".join(notifiers) or "none are configured"
        print(f"monitor test-alert: no notifier {name!r} (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    error = asyncio.run(send_test(notifiers[name], config.alerts.timeout))
    if error is not None:
        print(f"monitor test-alert: {name}: not sent: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{name}: sent")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from monitor.app import oneshot  # probes and aiohttp only for the commands that probe

    try:
        windows: tuple[Window, ...] = ()
        if args.config is not None:
            if args.origin or args.timeout is not None:
                raise oneshot.UsageError("--origin and --timeout go with a URL, not with -c")
            config = load_config(args.config)
            monitor = oneshot.monitor_from_config(config, args.target)
            windows = config.maintenance
        else:
            monitor = oneshot.site_from_arguments(args.target, args.origin, args.timeout or "10s")
    except (ConfigError, oneshot.UsageError) as exc:
        print(f"monitor check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(oneshot.check_once(monitor, as_json_output=args.json, windows=windows))


async def _db_upgrade(config: Config) -> int:
    from monitor.store import SqlStore

    store = SqlStore(config.storage.url)
    try:
        await store.upgrade()
    except StoreError as exc:
        print(f"monitor: cannot upgrade {config.storage.display_url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await store.close()
    print(f"{config.storage.display_url}: schema is up to date")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Uptime monitor: checks sites and their origins, says which layer broke.",
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the daemon",
        description="Run the daemon "
        "until SIGTERM or SIGINT; finished checks are stored before exit.",
    )
    _add_config(run)
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log (default: info)",
    )
    run.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="share the monitors between N processes (default 1; worker i serves "
        "/metrics on the configured port + i; about one per core past ~1,000 checks/s)",
    )
    run.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="run only share I of N (0-based) of the monitors: what --workers starts",
    )

    validate = commands.add_parser(
        "validate",
        help="check a config file and exit",
        description="Check a config file; exit 0 if valid, 2 if not.",
    )
    _add_config(validate)

    check = commands.add_parser(
        "check",
        help="check a site (and its origins) once and say what is wrong",
        description="Run one round against URL (and each --origin), print every probe's "
        "phases, status, telling headers and cause, and the verdict. With -c FILE, TARGET "
        "names a configured site or check. Exit 0 when up, 1 when not, 2 on bad usage.",
    )
    check.add_argument("target", metavar="URL|NAME", help="the URL to check, or a name with -c")
    check.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="ADDR_OR_URL",
        help="an origin: host[:port] to connect to with the site's name and "
        "TLS SNI, or the origin's own URL (repeatable)",
    )
    check.add_argument("--timeout", metavar="DURATION", help="time limit per probe (default 10s)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("-c", "--config", metavar="FILE", help="check TARGET from this config")

    test_alert = commands.add_parser(
        "test-alert",
        help="send a test message to a notifier",
        description="Send a test message through NOTIFIER (a name under notifiers: in the "
        "config) and say whether it was delivered. Exit 0 when sent, 1 when not, 2 on bad "
        "usage.",
    )
    test_alert.add_argument("notifier", metavar="NOTIFIER", help="the notifier's name")
    _add_config(test_alert)

    db = commands.add_parser("db", help="database commands", description="Database commands.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser(
        "upgrade",
        help="apply schema migrations and exit",
        description="Apply every pending schema migration.",
    )
    _add_config(upgrade)
    upgrade.set_defaults(log_level="warning")
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of 1 or more")
    return int(text)


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, metavar="FILE", help="the YAML config file"
    )
