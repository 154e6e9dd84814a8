"""The target: Debian's nginx on many loopback addresses, answering every site's path.

Sites are spread over 127.0.0.2, 127.0.0.3, ... (all of 127/8 is local on Linux), so that
fresh connections at a high rate never run out of ports towards one address. nginx
listens on each address (never on 0.0.0.0, so nothing outside the machine can reach it),
runs as a non-daemon with its own prefix in a temporary directory, and answers
``/s<digits>`` with a small 200 and anything else with 404, so a wrong URL shows.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from procs import free_port, http_get, start, stop, wait_http

NGINX = "/usr/sbin/nginx"
SITES_PER_ADDRESS = 100
BODY = "ok: monitor benchmark target\n"


@dataclass(frozen=True, slots=True)
class Target:
    port: int
    addresses: tuple[str, ...]

    def site(self, index: int) -> tuple[str, str]:
        """(name, URL) of site ``index`` (0-based): s000001 on the first address, ..."""
        name = f"s{index + 1:06d}"
        address = self.addresses[index // SITES_PER_ADDRESS % len(self.addresses)]
        return name, f"http://{address}:{self.port}/{name}"


def addresses(count: int) -> tuple[str, ...]:
    """``count`` loopback addresses from 127.0.0.2 on, skipping .0 and .255 last octets."""
    found: list[str] = []
    n = 2
    while len(found) < count:
        a, b, c = n >> 16 & 255, n >> 8 & 255, n & 255
        if c not in (0, 255):
            found.append(f"127.{a}.{b}.{c}")
        n += 1
    return tuple(found)


def nginx_conf(root: Path, target: Target, workers: int) -> str:
    listens = "\n".join(f"        listen {a}:{target.port} backlog=4096;" for a in target.addresses)
    temp = "\n".join(
        f"    {kind}_temp_path {root}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    body = BODY.replace("\n", "\\n")
    return f"""\
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 16384;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
{temp}
    server {{
{listens}
        default_type text/plain;
        location ~ "^/s[0-9]+$" {{
            return 200 "{body}";
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""


@contextmanager
def nginx(root: Path, sites: int, workers: int) -> Iterator[Target]:
    """Run nginx for up to ``sites`` sites under ``root``; yield where it listens."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    count = max(1, -(-sites // SITES_PER_ADDRESS))
    target = Target(free_port(), addresses(count))
    conf = root / "nginx.conf"
    conf.write_text(nginx_conf(root, target, workers))
    check = subprocess.run(
        [NGINX, "-t", "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
    proc = start(
        [NGINX, "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf)],
        root / "nginx.out",
    )
    try:
        _name, url = target.site(0)
        wait_http(url, proc, timeout=30)
        _last_name, last_url = target.site(sites - 1)
        status, body = http_get(last_url)
        if status != 200 or body.decode() != BODY:
            raise RuntimeError(f"nginx answered {last_url} with {status} {body[:80]!r}")
        yield target
    finally:
        stop(proc, grace=10, sig=15)
