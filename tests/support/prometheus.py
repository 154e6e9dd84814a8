"""A real Prometheus scraping a real monitor daemon that watches local sites, for the tests.

Everything listens on 127.0.0.1 only and is stopped at the end of its block. Without the
``prometheus`` and ``promtool`` binaries (Debian package ``prometheus``) the tests that
need them are skipped, unless ``MONITOR_REQUIRE_PROMETHEUS=1`` (as in CI) makes them fail.

The harness is synchronous (subprocesses, ``urllib``, sites in threads), so one stack can
serve a whole test module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest

REQUIRE_VARIABLE = "MONITOR_REQUIRE_PROMETHEUS"
STARTUP_DEADLINE = 20.0  # seconds
STOP_DEADLINE = 10.0  # the daemon's own shutdown takes up to 10 s
HTTP_TIMEOUT = 5.0

Sample = dict[str, Any]  # one element of a query's "result": {"metric": {...}, "value": [...]}


def find_binary(name: str) -> str:
    """The path of ``name``; skip the test without it, or fail under the require variable."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"no {name} on PATH (Debian package: prometheus)"
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{message}, and {REQUIRE_VARIABLE}=1", pytrace=False)
    pytest.skip(message)


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    command = [find_binary("promtool"), *args]
    completed = subprocess.run(command, input=stdin, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(
        command,
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening, kept."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


def http_get(url: str) -> tuple[int, bytes]:
    """GET ``url``: (status, body), error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- local sites --------------------------------------------------------------------------


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the tests read the daemon's log, not the sites'


@contextmanager
def serving_hello(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A site on 127.0.0.1 that answers every GET with 200 "hello"; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(STOP_DEADLINE)


# --- the daemon -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Daemon:
    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:port

    def metrics_page(self) -> bytes:
        status, body = http_get(f"{self.url}/metrics")
        assert status == 200, body
        return body

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Freeze the process (as an overloaded machine would), then let it go on."""
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)


@contextmanager
def running_daemon(config: Path, port: int, env: Mapping[str, str]) -> Iterator[Daemon]:
    """``monitor run -c config`` listening on 127.0.0.1:``port``, once /metrics answers."""
    command = [sys.executable, "-m", "monitor", "run", "-c", str(config)]
    log = config.with_name("daemon.log")
    environment = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with _process(command, log, config.parent, environment) as process:
        daemon = Daemon(process, f"http://127.0.0.1:{port}")
        _wait_until(lambda: _answers(f"{daemon.url}/metrics"), process, log)
        yield daemon


# --- Prometheus -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of an HTTP API answer; fails the test on an error answer."""
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}/api/v1/{path}?{query}")
        payload = json.loads(body)
        if status != 200 or payload.get("status") != "success":
            raise AssertionError(f"{path} {params}: HTTP {status}: {payload.get('error')}")
        return payload["data"]

    def query(self, expr: str) -> list[Sample]:
        """The instant vector of ``expr`` now (a scalar comes back as one sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[Sample] = data["result"]
        return result

    def wait_for(self, expr: str, deadline: float) -> list[Sample]:
        """Poll ``expr`` until it has samples or ``deadline`` (monotonic) passes."""
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)


@contextmanager
def running_prometheus(config: Path) -> Iterator[Prometheus]:
    """A Prometheus server with ``config``, its data next to it, once it is ready."""
    port = free_port()
    command = [
        find_binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={config.parent / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    log = config.with_name("prometheus.log")
    with _process(command, log, config.parent, dict(os.environ)) as process:
        prometheus = Prometheus(f"http://127.0.0.1:{port}")
        _wait_until(lambda: _answers(f"{prometheus.url}/-/ready"), process, log)
        yield prometheus


# --- processes ------------------------------------------------------------------------------


@contextmanager
def _process(
    command: list[str], log: Path, cwd: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=cwd, env=env
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGCONT)  # in case a test left it paused
        process.terminate()
        try:
            process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return http_get(url)[0] == 200
    except OSError:
        return False


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _fail(f"{process.args!r} exited with {process.returncode}", log)
        if ready():
            return
        time.sleep(0.1)
    _fail(f"{process.args!r} was not ready in {STARTUP_DEADLINE} s", log)


def _fail(message: str, log: Path) -> NoReturn:
    pytest.fail(f"{message}:\n{log.read_text(errors='replace')}", pytrace=False)
