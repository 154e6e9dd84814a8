"""The image's HEALTHCHECK: GET /healthz on the port the daemon's config listens on.

Reads ``server.listen`` from the config the container runs (``MONITOR_CONFIG``, by
default /etc/monitor/config.yaml), so a config listening on another port needs no change
to the image; an address of every interface (0.0.0.0, ::) is asked on loopback. Exit 0
when /healthz answers 200, else 1.
"""

from __future__ import annotations

import os
import sys
import urllib.request

import yaml

from monitor.hostport import split_host_port

DEFAULT_LISTEN = "127.0.0.1:9108"  # the daemon's default server.listen


def healthz_url(config_path: str) -> str:
    with open(config_path, encoding="utf-8") as file:
        config = yaml.load(file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    server = (config or {}).get("server") or {}
    listen = os.path.expandvars(str(server.get("listen", DEFAULT_LISTEN)))
    host, port = split_host_port(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port or 9108}/healthz"


def main() -> int:
    url = healthz_url(os.environ.get("MONITOR_CONFIG", "/etc/monitor/config.yaml"))
    try:
        with urllib.request.urlopen(url, timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
