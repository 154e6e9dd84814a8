"""Config parsing: every broken file in tests/configs names its file, line and field."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from monitor.config.load import Config, load_config, parse_config
from monitor.engine.plan import plan_round
from monitor.errors import ConfigError
from monitor.hostport import split_host_port
from monitor.models import (
    DnsCheck,
    Expect,
    HttpTarget,
    IcmpCheck,
    IpVersion,
    JsonExpect,
    Origin,
    StatusRange,
    TcpCheck,
    TlsCheck,
)

CONFIGS = Path(__file__).parents[1] / "configs"
REPO = Path(__file__).parents[2]
INVALID = sorted(CONFIGS.glob("invalid-*.yaml"))


def _expected_message(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# expect: (.+)", first)
    assert match, f"{path.name} must start with '# expect: <message>'"
    return match.group(1)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_names_file_line_and_field(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert "\n" not in message
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: .+", message), message
    assert message.endswith(": " + _expected_message(path))


def test_there_are_a_dozen_broken_configs() -> None:
    assert len(INVALID) >= 12


def _parse(text: str, **env: str) -> Config:
    return parse_config(text, file="config.yaml", env=env)


MINIMAL = "sites:\n  - name: shop\n    url: https://shop.example.com/\n"


def test_defaults_apply_when_keys_are_left_out() -> None:
    config = _parse(MINIMAL)
    assert config.storage.url == "sqlite+aiosqlite:///monitor.db"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 9108)
    site = config.sites[0]
    assert (site.interval, site.timeout) == (30.0, 10.0)
    assert site.expect == Expect()
    assert site.origins == ()


@pytest.mark.parametrize(
    ("site_yaml", "interval", "timeout"),
    [
        pytest.param("interval: 1m", 60.0, 10.0, id="interval-only"),
        pytest.param("interval: 4s", 4.0, 2.0, id="short-interval-halves-default-timeout"),
        pytest.param("interval: 2s\n    timeout: 1500ms", 2.0, 1.5, id="both"),
        pytest.param("interval: 1m30s", 90.0, 10.0, id="compound-duration"),
    ],
)
def test_site_timing(site_yaml: str, interval: float, timeout: float) -> None:
    config = _parse(MINIMAL + f"    {site_yaml}\n")
    assert (config.sites[0].interval, config.sites[0].timeout) == (interval, timeout)


def test_full_site_with_expectations_and_origins() -> None:
    text = """
sites:
  - name: shop
    url: https://shop.example.com/
    expect:
      status: [200, "300-399"]
      body_contains: "Add to cart"
    origins:
      - {name: origin-1, address: "203.0.113.10:443"}
      - {name: origin-2, address: "[2001:db8::1]:443"}
      - {name: origin-3, address: "2001:db8::2"}
      - {name: health, url: "http://origin.internal:8080/health"}
"""
    site = _parse(text).sites[0]
    assert site.expect.status == (StatusRange(200, 200), StatusRange(300, 399))
    assert site.expect.body_contains == "Add to cart"
    assert [o.name for o in site.origins] == ["origin-1", "origin-2", "origin-3", "health"]
    assert site.origins[3] == Origin(name="health", url="http://origin.internal:8080/health")


def test_env_variables_are_substituted() -> None:
    text = "storage:\n  url: postgresql+asyncpg://m:${PGPASSWORD}@db/m\n" + MINIMAL
    config = _parse(text, PGPASSWORD="s3cret")
    assert config.storage.url == "postgresql+asyncpg://m:s3cret@db/m"


def test_ipv6_listen_address() -> None:
    config = _parse("server:\n  listen: '[::1]:9200'\n" + MINIMAL)
    assert (config.server.host, config.server.port) == ("::1", 9200)
    assert config.server.site_histograms


@pytest.mark.parametrize(
    ("server", "beat"),
    [
        ("", None),  # the default: auto, chosen from the rate of runs
        ("server:\n  beat: auto\n", None),
        ("server:\n  beat: 20ms\n", 0.02),
        ("server:\n  beat: 1s\n", 1.0),
        ("server:\n  beat: 5s\n", 5.0),
        ("server:\n  beat: 0\n", 0.0),  # each run at its own grid point
        ("server:\n  beat: 0s\n", 0.0),
        ("server:\n  listen: 127.0.0.1:9300\n  beat: 100ms\n", 0.1),
    ],
)
def test_beat(server: str, beat: float | None) -> None:
    assert _parse(server + MINIMAL).server.beat == beat


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("6s", "server.beat: must be auto, 0, or at most 5s (runs are planned up to a beat late)"),
        ("Auto", "server.beat: 'Auto' is not a duration"),
        ("-50ms", "server.beat: '-50ms' is not a duration"),
        ("often", "server.beat: "),
    ],
)
def test_bad_beat_is_refused_with_its_line(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(f"server:\n  beat: {value}\n" + MINIMAL)
    assert str(caught.value).startswith(f"config.yaml:2: {message}")


@pytest.mark.parametrize(
    ("server", "cap"),
    [
        ("", None),  # the default: auto, from the open-files limit
        ("server:\n  max_probes_in_flight: auto\n", None),
        ("server:\n  max_probes_in_flight: 0\n", 0),  # no cap
        ("server:\n  max_probes_in_flight: 500\n", 500),
        ("server:\n  max_probes_in_flight: 10_000\n", 10_000),
        ("server:\n  max_probes_in_flight: 0x100\n", 256),  # YAML 1.1's integers
        ("server:\n  max_probes_in_flight: 010\n", 8),  # octal, as YAML 1.1 reads it
        ("server:\n  max_probes_in_flight: 1:30\n", 90),  # base 60 (was a traceback)
    ],
)
def test_max_probes_in_flight(server: str, cap: int | None) -> None:
    assert _parse(server + MINIMAL).server.max_probes_in_flight == cap


@pytest.mark.parametrize("value", ["-1", "2.5", "'100'", "lots", "Auto", "[1]"])
def test_bad_max_probes_in_flight_is_refused_with_its_line(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(f"server:\n  max_probes_in_flight: {value}\n" + MINIMAL)
    message = "server.max_probes_in_flight: must be auto, 0 (no cap) or a whole number"
    assert str(caught.value).startswith(f"config.yaml:2: {message}")


@pytest.mark.parametrize("listen", ["", "  listen: 127.0.0.1:9300\n"])
def test_site_histograms_can_be_turned_off_with_or_without_a_listen_address(listen: str) -> None:
    config = _parse(f"server:\n{listen}  site_histograms: false\n" + MINIMAL)
    assert not config.server.site_histograms
    assert config.server.port == (9300 if listen else 9108)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read config: No such file"):
        load_config(missing, env={})


def test_empty_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"config\.yaml:1: the config is empty"):
        _parse("")


def test_shipped_example_config_is_valid() -> None:
    config = load_config(REPO / "config.example.yaml", env={})
    assert config.sites


FULL = """
sites:
  - name: api
    url: https://api.example.com:8443/health
    method: post
    headers: {X-Probe: monitor, Accept: application/json}
    body: '{"ping": true}'
    follow_redirects: true
    max_redirects: 3
    bearer_token: ${API_TOKEN}
    ip_version: 6
    proxy: http://proxy.internal:3128
    expect:
      status: [200]
      body_not_contains: error
      body_matches: '"ok":\\\\s*true'
      json:
        - {path: data.state, equals: up}
        - {path: "items[0].version", matches: "^2\\\\."}
      headers: {Content-Type: "^application/json"}
      max_latency: 2s
    origins:
      - {name: o1, address: "10.0.0.5:8443", tls_verify_name: o1.internal}
      - {name: o2, address: "10.0.0.6", tls_verify: false}
    checks:
      - {kind: tls, min_days: 21}
      - {kind: dns, resolvers: ["127.0.0.1:5353", "[::1]:53"], expect: [192.0.2.1]}
      - {kind: tcp, port: 22, send: "PING\\r\\n", expect_reply: PONG}
      - {kind: icmp, count: 5, max_loss: 0.2, max_rtt: 150ms}
checks:
  - {name: mx, kind: dns, query: example.com, record: mx, expect: ["10 mail.example.com"]}
  - {name: gw, kind: icmp, host: "192.0.2.1", interval: 1m}
  - {name: cert, kind: tls, host: shop.example.com, server_name: www.example.com, verify: false}
"""


def test_every_http_option_and_check_kind_parses() -> None:
    config = _parse(FULL, API_TOKEN="t0k")
    site = config.sites[0]
    request = site.request
    assert request.method == "POST"
    assert request.headers == (("X-Probe", "monitor"), ("Accept", "application/json"))
    assert (request.body, request.follow_redirects, request.max_redirects) == (
        '{"ping": true}',
        True,
        3,
    )
    assert (request.bearer_token, request.ip_version, request.proxy) == (
        "t0k",
        IpVersion.V6,
        "http://proxy.internal:3128",
    )
    expect = site.expect
    assert expect.json == (
        JsonExpect(path="data.state", equals="up"),
        JsonExpect(path="items[0].version", matches="^2\\."),
    )
    assert expect.headers == (("Content-Type", "^application/json"),)
    assert (expect.max_latency, expect.body_not_contains) == (2.0, "error")
    assert site.origins[0].tls_verify_name == "o1.internal"
    assert site.origins[1].tls_verify is False
    assert site.checks == (
        TlsCheck(host="api.example.com", port=8443, min_days=21.0),
        DnsCheck(
            query="api.example.com", resolvers=("127.0.0.1:5353", "[::1]:53"), expect=("192.0.2.1",)
        ),
        TcpCheck(host="api.example.com", port=22, send="PING\r\n", expect_reply="PONG"),
        IcmpCheck(host="api.example.com", count=5, max_loss=0.2, max_rtt=0.15),
    )
    assert [c.name for c in config.checks] == ["mx", "gw", "cert"]
    assert config.checks[0].spec == DnsCheck(
        query="example.com", record="MX", expect=("10 mail.example.com",)
    )
    assert config.checks[1].interval == 60.0
    assert config.checks[2].spec == TlsCheck(
        host="shop.example.com", server_name="www.example.com", verify=False
    )
    assert [m.name for m in config.monitors] == ["api", "mx", "gw", "cert"]


def test_checks_alone_make_a_config() -> None:
    config = _parse("checks:\n  - {name: gw, kind: icmp, host: 192.0.2.1}\n")
    assert config.sites == ()
    assert config.checks[0].spec == IcmpCheck(host="192.0.2.1")


def _hosts(spec: object) -> set[str]:
    """The hosts a planned probe sends packets to (besides the system's DNS resolver)."""
    if isinstance(spec, HttpTarget):
        origin = spec.origin
        where = spec.site.url if origin is None else (origin.url or f"//{origin.address}")
        return {urlsplit(where).hostname or ""}
    resolvers = getattr(spec, "resolvers", ())
    return {split_host_port(r)[0] for r in resolvers} | {
        getattr(spec, "host", getattr(spec, "query", ""))
    }


def test_example_config_sends_nothing_beyond_loopback_and_reserved_names() -> None:
    """Running the example offline must not aim packets at real or documentation addresses."""
    config = load_config(REPO / "config.example.yaml", env={})
    hosts: set[str] = set()
    for monitor in config.monitors:
        for planned in plan_round(monitor, datetime(2026, 1, 1, tzinfo=UTC)):
            hosts |= _hosts(planned.spec)
    reserved = ("127.0.0.1", "example.com")  # the daemon itself; a name kept for examples
    assert all(h in reserved or h.endswith(".example.com") for h in hosts), hosts


def test_state_and_trend_settings_default_and_override_key_by_key() -> None:
    config = _parse(
        """
defaults:
  failure_threshold: 4
  flap_window: 15m
  trend: {baseline: 12h, min_factor: 2, min_delta: 100ms}
sites:
  - name: shop
    url: https://shop.example.com/
    failure_window: 6
    confirm: false
    trend: {phases: [processing, total], limit: 2s, min_delta: 20ms}
  - name: blog
    url: https://blog.example.com/
    timeout: 5s
    expect: {max_latency: 1500ms}
"""
    )
    shop, blog = config.tracking["shop"], config.tracking["blog"]
    assert (shop.policy.failure_threshold, shop.policy.failure_window) == (4, 6)
    assert shop.policy.confirm is False
    assert blog.policy.confirm is True
    assert shop.policy.flap_window == blog.policy.flap_window == 900
    assert shop.policy.recovery_threshold == 2
    assert shop.trend.baseline == blog.trend.baseline == 43200
    assert shop.trend.min_factor == 2
    assert (shop.trend.min_delta, blog.trend.min_delta) == (0.02, 0.1)
    assert shop.trend.phases == ("processing", "total")
    assert shop.trend.limit == 2
    assert blog.trend.phases == ("processing",)
    assert blog.trend.limit == 1.5  # the forecast counts down to max_latency by default


def test_without_settings_every_monitor_gets_the_documented_defaults() -> None:
    tracking = _parse(MINIMAL).tracking["shop"]
    policy = tracking.policy
    assert (policy.failure_threshold, policy.recovery_threshold) == (3, 2)
    assert policy.failure_window is None
    assert policy.confirm
    assert tracking.trend.enabled
    assert tracking.trend.limit == 10.0
    assert tracking.trend.min_delta == 0.05
