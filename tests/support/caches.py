"""Real Varnish and nginx in front of a local origin, started by the tests.

Each server runs in the foreground from its own temporary directory, listens on 127.0.0.1
only, and is stopped and deleted at the end. Without the binaries the tests that need them
are skipped, unless ``MONITOR_REQUIRE_CACHES=1`` (as in CI) makes them fail.

As root, both daemons drop privileges as they do in production: varnishd to its
``varnish``/``vcache`` users (its default Unix jail), nginx's workers to ``nobody``. That is
why the temporary directories are made world-readable.
"""

from __future__ import annotations

import asyncio
import grp
import http.client
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from aiohttp import web

REQUIRE_VARIABLE = "MONITOR_REQUIRE_CACHES"
# Debian installs both daemons in /usr/sbin, which is often not on a normal user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")
ORIGIN_HOST = "127.0.0.2"  # apart from the caches on 127.0.0.1, so a probe's peer tells them apart
# Varnish's first_byte_timeout and nginx's proxy_read_timeout, in seconds.
FIRST_BYTE_TIMEOUT = 1
# How long /slow takes: longer than the caches wait, shorter than the checks' 5 s timeout.
ORIGIN_DELAY = 2.0
# The origin of the captured fixtures, mirrored so that pages compare header for header.
ORIGIN_SERVER = "lab-origin/1.0"
STARTUP_DEADLINE = 20.0  # seconds; varnishd compiles its VCL with cc before it answers
STOP_DEADLINE = 5.0


def find_binary(name: str, package: str) -> str:
    """The path of ``name``; skip the test without it, or fail under MONITOR_REQUIRE_CACHES=1."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    path = shutil.which(name, path=search)
    if path is not None:
        return path
    message = f"no {name} on PATH or in {', '.join(SBIN_DIRS)} (Debian package: {package})"
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{message}, and {REQUIRE_VARIABLE}=1", pytrace=False)
    pytest.skip(message)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections.

    The socket stays bound but never listens, so nobody else can take the port meanwhile.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


# --- the origin -------------------------------------------------------------------------


class Origin:
    """The shop's application server on a fixed port, which a test may stop and restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"{ORIGIN_HOST}:{self.port}"

    async def start(self) -> None:
        # A short shutdown: a /slow request the cache gave up on must not hold up stop().
        runner = web.AppRunner(_origin_app(), shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, ORIGIN_HOST, self.port).start()
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening, so connections to the port are refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@asynccontextmanager
async def running_origin(port: int) -> AsyncIterator[Origin]:
    origin = Origin(port)
    await origin.start()
    try:
        yield origin
    finally:
        await origin.stop()


def _origin_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", _home)
    app.router.add_get("/status/{code:\\d{3}}", _status)
    app.router.add_get("/slow", _slow)
    return app


def _headers(**extra: str) -> dict[str, str]:
    return {"Server": ORIGIN_SERVER, "X-Origin": "lab-backend", **extra}


async def _home(_: web.Request) -> web.Response:
    return web.Response(text="shop home", headers=_headers(**{"Cache-Control": "max-age=300"}))


async def _status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    # The bodies and headers of the captured origin (varnish_d_..., varnish_e_...).
    text = "origin internal error\n" if code == 500 else f"origin says {code}\n"
    headers = _headers(**{"Cache-Control": "no-store"})
    if code == 503:
        headers["Retry-After"] = "30"
    return web.Response(status=code, text=text, headers=headers)


async def _slow(_: web.Request) -> web.Response:
    await asyncio.sleep(ORIGIN_DELAY)
    return web.Response(text="slow but fine", headers=_headers(**{"Cache-Control": "no-store"}))


# --- the caches -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cache:
    """A running cache or reverse proxy on 127.0.0.1."""

    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@dataclass(frozen=True, slots=True)
class Varnish(Cache):
    """A running varnishd; ``workdir`` is its -n directory, which varnishadm needs too."""

    workdir: Path
    varnishadm: str

    def forget_everything(self) -> None:
        """Ban every cached object, so one test's cached page does not answer the next."""
        command = [self.varnishadm, "-n", str(self.workdir), "-t", "5", "ban", "req.url", "~", "."]
        subprocess.run(command, check=True, capture_output=True, timeout=10)


VCL = """\
vcl 4.1;

# Nothing but the backend: the builtin VCL, and Varnish's own "Backend fetch failed" page.
backend origin {{
    .host = "{host}";
    .port = "{port}";
    .connect_timeout = 1s;
    .first_byte_timeout = {first_byte_timeout}s;
}}
"""


@contextmanager
def running_varnish(origin_port: int) -> Iterator[Varnish]:
    """varnishd in front of the origin on ``ORIGIN_HOST:origin_port``."""
    varnishd = find_binary("varnishd", "varnish")
    varnishadm = find_binary("varnishadm", "varnish")
    with _server_directory("varnish") as root:
        vcl = root / "default.vcl"
        vcl.write_text(
            VCL.format(host=ORIGIN_HOST, port=origin_port, first_byte_timeout=FIRST_BYTE_TIMEOUT),
            encoding="utf-8",
        )
        port = free_port("127.0.0.1")
        workdir = root / "work"
        # After a refused connection Varnish does not try that backend for 0.25 s; the
        # origins of consecutive tests come and go faster than that on the same port.
        command = [
            varnishd, "-F", "-a", f"127.0.0.1:{port}", "-T", "127.0.0.1:0",
            "-f", str(vcl), "-n", str(workdir), "-s", "malloc,32m",
            "-p", "backend_remote_error_holddown=0",
        ]  # fmt: skip
        with _daemon(command, port, root / "varnishd.log"):
            yield Varnish(port=port, workdir=workdir, varnishadm=varnishadm)


NGINX_CONF = """\
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{origin}; }}
        location /slow {{
            proxy_pass http://{origin};
            proxy_read_timeout {first_byte_timeout}s;
        }}
        location /dead {{ proxy_pass http://127.0.0.1:{dead_port}; }}
        # As in the capture nginx_503_maintenance.
        location /maintenance {{
            add_header Retry-After 120 always;
            return 503;
        }}
    }}
}}
"""


@contextmanager
def running_nginx(origin_port: int, dead_port: int) -> Iterator[Cache]:
    """nginx proxying to the origin, to a dead upstream (/dead), and a maintenance page."""
    nginx = find_binary("nginx", "nginx")
    with _server_directory("nginx") as root:
        port = free_port("127.0.0.1")
        conf = root / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                user=_nginx_user(),
                root=root,
                port=port,
                origin=f"{ORIGIN_HOST}:{origin_port}",
                first_byte_timeout=FIRST_BYTE_TIMEOUT,
                dead_port=dead_port,
            ),
            encoding="utf-8",
        )
        # -e: the error log nginx writes before it has read the config, also ours.
        command = [
            nginx, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log"),
            "-g", "daemon off;",
        ]  # fmt: skip
        with _daemon(command, port, root / "nginx.log"):
            yield Cache(port=port)


def _nginx_user() -> str:
    """As root, name the workers' user: nginx's default group "nobody" is missing on Debian."""
    if os.geteuid() != 0:
        return ""  # the directive only makes sense for root, and nginx warns about it
    nobody = pwd.getpwnam("nobody")
    return f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};"


# --- running a daemon -------------------------------------------------------------------


@contextmanager
def _server_directory(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"monitor-{name}-", ignore_cleanup_errors=True) as d:
        root = Path(d)
        root.chmod(0o755)  # readable by the unprivileged users the daemons switch to
        yield root


@contextmanager
def _daemon(
    command: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    """Run ``command`` until the block ends, once it answers HTTP on 127.0.0.1:``port``."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_until_answering(process, port, log)
        yield
    finally:
        _stop(process)


def _wait_until_answering(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _fail(f"{process.args!r} exited with {process.returncode}", log)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            # Any answer will do, even an error page: the server is up.
            connection.request("GET", "/_ready")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
        finally:
            connection.close()
    _fail(f"{process.args!r} did not answer on port {port} in {STARTUP_DEADLINE} s", log)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _fail(message: str, log: Path) -> NoReturn:
    pytest.fail(f"{message}:\n{log.read_text(errors='replace')}", pytrace=False)
