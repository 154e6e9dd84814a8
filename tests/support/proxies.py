"""Real HAProxy, Apache httpd and Caddy in front of local origins, started by the tests.

Like the caches in ``caches``: each server runs in the foreground from its own config file in
a temporary directory, listens on 127.0.0.1 only, and is stopped at the end; without the
binary the test is skipped, unless ``MONITOR_REQUIRE_CACHES=1`` makes it fail.

Each proxy serves several *sites*, one port each, so that every site can proxy ``/`` and
``/slow`` to its backend and ``monitor check`` probes the same path on the origin:

- ``main``: the origin on ``ORIGIN_HOST:origin_port``, with a 1 s first-byte timeout;
- ``wrong-port``: a backend port nothing listens on (the origin itself runs fine);
- ``checked`` (HAProxy, Caddy): a health check on ``/status/500`` marks the origin down;
- ``friendly`` (HAProxy): a custom 503 page with ``Retry-After`` for a dead backend;
- ``maintenance``: a maintenance rule, 503 with ``Retry-After: 120``;
- ``cached`` (Apache): mod_cache in front of the origin;
- ``tls-<kind>-verify`` / ``tls-<kind>-noverify``: an HTTPS origin whose certificate is
  ``expired`` or for the ``wrong-name``, with the proxy verifying it or not.

As root, HAProxy and Apache drop privileges to ``nobody`` as they would in production;
Caddy does not switch users at all.
"""

from __future__ import annotations

import grp
import os
import pwd
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from aiohttp import web

from tests.support.caches import (
    FIRST_BYTE_TIMEOUT,
    ORIGIN_HOST,
    _daemon,
    _origin_app,
    _server_directory,
    find_binary,
    free_port,
)

# The name in the TLS origins' certificates (besides ORIGIN_HOST's address).
TLS_NAME = "origin.test"
TLS_KINDS = ("expired", "wrong-name")


@dataclass(frozen=True, slots=True)
class Proxy:
    """A running reverse proxy: one port on 127.0.0.1 per site."""

    product: str
    ports: dict[str, int]

    def url(self, site: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[site]}{path}"


# --- TLS origins ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsOrigins:
    """The test CA's file, and per certificate kind an HTTPS origin's port and certificate.

    Made once (the proxies' configs name the ports); served per test by ``serving``.
    """

    ca_file: Path
    ports: dict[str, int]
    certs: dict[str, trustme.LeafCert]

    def url(self, kind: str, path: str = "/") -> str:
        return f"https://{ORIGIN_HOST}:{self.ports[kind]}{path}"


def make_tls_origins(directory: Path) -> TlsOrigins:
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ports = {kind: free_port(ORIGIN_HOST) for kind in TLS_KINDS}
    return TlsOrigins(ca_file, ports, {kind: _leaf(ca, kind) for kind in TLS_KINDS})


def _leaf(ca: trustme.CA, kind: str) -> trustme.LeafCert:
    now = datetime.now(UTC)
    if kind == "expired":
        return ca.issue_cert(
            TLS_NAME, ORIGIN_HOST, not_before=now - timedelta(30), not_after=now - timedelta(1)
        )
    if kind == "wrong-name":
        return ca.issue_cert("other.test")
    raise AssertionError(kind)


@asynccontextmanager
async def serving(tls: TlsOrigins) -> AsyncIterator[None]:
    """The HTTPS origins on ``ORIGIN_HOST``, one per kind of bad certificate."""
    runners: list[web.AppRunner] = []
    try:
        for kind, port in tls.ports.items():
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.certs[kind].configure_cert(context)
            runner = web.AppRunner(_origin_app(), shutdown_timeout=0.2)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, ORIGIN_HOST, port, ssl_context=context).start()
        yield
    finally:
        for runner in runners:
            await runner.cleanup()


# --- HAProxy --------------------------------------------------------------------------------

HAPROXY_SITES = (
    "main",
    "wrong-port",
    "checked",
    "friendly",
    "maintenance",
    *(f"tls-{k}-{v}" for k in TLS_KINDS for v in ("verify", "noverify")),
)
# HAProxy's own words are kept; the custom page is the operator's ("friendly" 503).
FRIENDLY_503 = """\
HTTP/1.1 503 Service Unavailable\r
Content-Type: text/html\r
Retry-After: 300\r
Cache-Control: no-store\r
Connection: close\r
\r
<html><body><h1>We'll be right back</h1><p>The shop is busy. Please retry shortly.</p></body></html>
"""
HAPROXY_CONF = """\
global
    {user}
    pidfile {root}/haproxy.pid

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server {timeout}s
    # Two retries with HAProxy's 1 s turn-around: a refused server answers after about 2 s.
    retries 2

frontend main
    bind 127.0.0.1:{ports[main]}
    default_backend origin
frontend wrong-port
    bind 127.0.0.1:{ports[wrong-port]}
    default_backend wrong_port
frontend checked
    bind 127.0.0.1:{ports[checked]}
    default_backend checked
frontend friendly
    bind 127.0.0.1:{ports[friendly]}
    default_backend friendly
frontend maintenance
    bind 127.0.0.1:{ports[maintenance]}
    http-request return status 503 content-type text/html hdr Retry-After 120 string "<html><body><h1>Down for maintenance</h1></body></html>"
{tls_frontends}
backend origin
    server shop {origin}
backend wrong_port
    server shop 127.0.0.1:{dead_port}
backend checked
    option httpchk GET /status/500
    server shop {origin} check inter 100ms fall 1 rise 1
backend friendly
    errorfile 503 {root}/friendly503.http
    server shop 127.0.0.1:{dead_port}
{tls_backends}
"""  # noqa: E501


def _haproxy_tls(ports: dict[str, int], tls: TlsOrigins) -> tuple[str, str]:
    frontends, backends = [], []
    for kind, port in tls.ports.items():
        for mode in ("verify", "noverify"):
            site = f"tls-{kind}-{mode}"
            backend = site.replace("-", "_")
            frontends.append(
                f"frontend {site}\n    bind 127.0.0.1:{ports[site]}\n"
                f"    default_backend {backend}\n"
            )
            check = (
                f"verify required ca-file {tls.ca_file} sni str({TLS_NAME}) verifyhost {TLS_NAME}"
                if mode == "verify"
                else "verify none"
            )
            server = f"server shop {ORIGIN_HOST}:{port} ssl {check}"
            # httpclose: no idle TLS connection outlives a test's origin.
            backends.append(f"backend {backend}\n    option httpclose\n    {server}\n")
    return "".join(frontends), "".join(backends)


@contextmanager
def running_haproxy(origin_port: int, dead_port: int, tls: TlsOrigins) -> Iterator[Proxy]:
    haproxy = find_binary("haproxy", "haproxy")
    with _server_directory("haproxy") as root:
        ports = {site: free_port("127.0.0.1") for site in HAPROXY_SITES}
        (root / "friendly503.http").write_text(FRIENDLY_503, encoding="utf-8")
        tls_frontends, tls_backends = _haproxy_tls(ports, tls)
        conf = root / "haproxy.cfg"
        conf.write_text(
            HAPROXY_CONF.format(
                user=_unprivileged("user {user}\n    group {group}"),
                root=root,
                timeout=FIRST_BYTE_TIMEOUT,
                ports=ports,
                origin=f"{ORIGIN_HOST}:{origin_port}",
                dead_port=dead_port,
                tls_frontends=tls_frontends,
                tls_backends=tls_backends,
            ),
            encoding="utf-8",
        )
        # -db: foreground, no daemon mode; -W would add a master process we do not need.
        command = [haproxy, "-db", "-f", str(conf)]
        with _daemon(command, ports["main"], root / "haproxy.log"):
            yield Proxy("HAProxy", ports)


# --- Apache httpd ---------------------------------------------------------------------------

APACHE_SITES = (
    "main",
    "wrong-port",
    "maintenance",
    "cached",
    *(f"tls-{k}-{v}" for k in TLS_KINDS for v in ("verify", "noverify")),
)
APACHE_MODULES = (
    "mpm_event",
    "authz_core",
    "alias",
    "headers",
    "proxy",
    "proxy_http",
    "cache",
    "cache_disk",
    "socache_shmcb",
    "ssl",
)
APACHE_CONF = """\
ServerRoot {root}
ServerName 127.0.0.1
PidFile {root}/httpd.pid
ErrorLog {root}/error.log
LogLevel warn
{user}
{modules}
Mutex file:{root}
DefaultRuntimeDir {root}
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
# Apache's own first-byte wait for its backends.
ProxyTimeout {timeout}
SSLProxyEngine on
{listen}
<VirtualHost 127.0.0.1:{ports[main]}>
    # retry=0: after a refused connection, try again at the next request, not after 60 s.
    ProxyPass / http://{origin}/ retry=0
</VirtualHost>
<VirtualHost 127.0.0.1:{ports[wrong-port]}>
    ProxyPass / http://127.0.0.1:{dead_port}/ retry=0
</VirtualHost>
<VirtualHost 127.0.0.1:{ports[maintenance]}>
    Header always set Retry-After 120
    RedirectMatch 503 ^/
</VirtualHost>
<VirtualHost 127.0.0.1:{ports[cached]}>
    CacheRoot {root}/cache
    CacheEnable disk /
    CacheQuickHandler off
    ProxyPass / http://{origin}/ retry=0
</VirtualHost>
{tls_hosts}
"""


def _apache_tls(ports: dict[str, int], tls: TlsOrigins) -> str:
    hosts = []
    for kind, port in tls.ports.items():
        for mode in ("verify", "noverify"):
            checks = (
                f"SSLProxyVerify require\n    SSLProxyCACertificateFile {tls.ca_file}\n"
                "    SSLProxyCheckPeerName on\n    SSLProxyCheckPeerExpire on\n"
                if mode == "verify"
                else "SSLProxyVerify none\n    SSLProxyCheckPeerName off\n"
                "    SSLProxyCheckPeerExpire off\n"
            )
            hosts.append(
                f"<VirtualHost 127.0.0.1:{ports[f'tls-{kind}-{mode}']}>\n    {checks}"
                f"    ProxyPass / https://{ORIGIN_HOST}:{port}/ retry=0 disablereuse=On\n"
                "</VirtualHost>\n"
            )
    return "".join(hosts)


@contextmanager
def running_apache(origin_port: int, dead_port: int, tls: TlsOrigins) -> Iterator[Proxy]:
    apache = find_binary("apache2", "apache2")
    modules_dir = Path("/usr/lib/apache2/modules")
    with _server_directory("apache") as root:
        (root / "cache").mkdir()
        if os.geteuid() == 0:  # the workers write the cache as nobody
            nobody = pwd.getpwnam("nobody")
            os.chown(root / "cache", nobody.pw_uid, nobody.pw_gid)
        ports = {site: free_port("127.0.0.1") for site in APACHE_SITES}
        conf = root / "httpd.conf"
        conf.write_text(
            APACHE_CONF.format(
                root=root,
                user=_unprivileged("User {user}\nGroup {group}"),
                modules="\n".join(
                    f"LoadModule {m}_module {modules_dir / f'mod_{m}.so'}" for m in APACHE_MODULES
                ),
                timeout=FIRST_BYTE_TIMEOUT,
                listen="\n".join(f"Listen 127.0.0.1:{p}" for p in ports.values()),
                ports=ports,
                origin=f"{ORIGIN_HOST}:{origin_port}",
                dead_port=dead_port,
                tls_hosts=_apache_tls(ports, tls),
            ),
            encoding="utf-8",
        )
        command = [apache, "-f", str(conf), "-DFOREGROUND"]
        with _daemon(command, ports["main"], root / "httpd.log"):
            yield Proxy("Apache", ports)


# --- Caddy ----------------------------------------------------------------------------------

CADDY_SITES = (
    "main",
    "wrong-port",
    "checked",
    "maintenance",
    *(f"tls-{k}-{v}" for k in TLS_KINDS for v in ("verify", "noverify")),
)
CADDYFILE = """\
{{
    admin off
    auto_https off
    storage file_system {root}/data
}}
http://127.0.0.1:{ports[main]} {{
    reverse_proxy {origin} {{
        transport http {{
            response_header_timeout {timeout}s
        }}
    }}
}}
http://127.0.0.1:{ports[wrong-port]} {{
    reverse_proxy 127.0.0.1:{dead_port}
}}
http://127.0.0.1:{ports[checked]} {{
    reverse_proxy {origin} {{
        health_uri /status/500
        health_interval 100ms
    }}
}}
http://127.0.0.1:{ports[maintenance]} {{
    header Retry-After 120
    respond "Down for maintenance" 503
}}
{tls_sites}
"""


def _caddy_tls(ports: dict[str, int], tls: TlsOrigins) -> str:
    sites = []
    for kind, port in tls.ports.items():
        for mode in ("verify", "noverify"):
            check = (
                f"tls_trusted_ca_certs {tls.ca_file}\n            tls_server_name {TLS_NAME}"
                if mode == "verify"
                else "tls_insecure_skip_verify"
            )
            sites.append(
                f"http://127.0.0.1:{ports[f'tls-{kind}-{mode}']} {{\n"
                f"    reverse_proxy https://{ORIGIN_HOST}:{port} {{\n"
                f"        transport http {{\n            {check}\n            keepalive off\n"
                "        }\n    }\n}\n"
            )
    return "".join(sites)


@contextmanager
def running_caddy(origin_port: int, dead_port: int, tls: TlsOrigins) -> Iterator[Proxy]:
    caddy = find_binary("caddy", "caddy")
    with _server_directory("caddy") as root:
        ports = {site: free_port("127.0.0.1") for site in CADDY_SITES}
        conf = root / "Caddyfile"
        conf.write_text(
            CADDYFILE.format(
                root=root,
                ports=ports,
                origin=f"{ORIGIN_HOST}:{origin_port}",
                timeout=FIRST_BYTE_TIMEOUT,
                dead_port=dead_port,
                tls_sites=_caddy_tls(ports, tls),
            ),
            encoding="utf-8",
        )
        command = [caddy, "run", "--config", str(conf), "--adapter", "caddyfile"]
        # Caddy keeps its state under HOME/XDG directories: ours, not the user's.
        env = {**os.environ, "HOME": str(root), "XDG_DATA_HOME": str(root / "data")}
        env["XDG_CONFIG_HOME"] = str(root / "config")
        with _daemon(command, ports["main"], root / "caddy.log", env=env):
            yield Proxy("Caddy", ports)


def _unprivileged(template: str) -> str:
    """As root, the directive naming ``nobody`` and its group; nothing otherwise."""
    if os.geteuid() != 0:
        return ""
    nobody = pwd.getpwnam("nobody")
    return template.format(user="nobody", group=grp.getgrgid(nobody.pw_gid).gr_name)
