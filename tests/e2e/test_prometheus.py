"""The shipped Prometheus config, alert rules and Grafana dashboard against a real Prometheus.

One stack serves the module: local sites (up, refused, an origin refused behind a working
edge, a certificate three days from expiry), the daemon watching them every second, and
Prometheus scraping it every second with the shipped job and rules. The daemon is frozen
for a few seconds once, so that it misses runs as an overloaded one would.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from tests.support.prometheus import (
    Daemon,
    Prometheus,
    closed_port,
    find_binary,
    free_port,
    promtool,
    running_daemon,
    running_prometheus,
    serving_hello,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "monitor.json"

SITES = ("up", "down", "hidden", "tls")
# Series the daemon does not feed yet: expressions over them must parse, and need data
# only once this set no longer names them.
NOT_YET_FED: set[str] = set()
# Grafana's variables, as Grafana fills them in: a multi-value $monitor becomes a regex.
VARIABLES = {
    "$monitor": "(" + "|".join(SITES) + ")",
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}
DEADLINE = 30.0  # seconds for any expression to show data, counted from its test's start


# --- what the shipped files ask ---------------------------------------------------------


def _exprs(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(where, expr) for every PromQL expression in a Grafana dashboard's JSON."""
    if isinstance(node, dict):
        here = node.get("title") or node.get("name") or where
        if isinstance(node.get("expr"), str):
            yield f"{here} {node.get('refId', '')}".strip(), node["expr"]
        for value in node.values():
            yield from _exprs(value, here)
    elif isinstance(node, list):
        for value in node:
            yield from _exprs(value, where)


def dashboard_exprs() -> list[Any]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [pytest.param(expr, id=where) for where, expr in _exprs(dashboard)]


def rule_exprs() -> list[Any]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [
        pytest.param(rule["expr"], id=rule.get("alert") or rule["record"])
        for group in groups
        for rule in group["rules"]
    ]


def filled_in(expr: str) -> str:
    # Longest names first, so no variable is replaced inside a longer one's name.
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))


# --- the stack ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stack:
    daemon: Daemon
    prometheus: Prometheus


DAEMON_CONFIG = """\
storage:
  url: sqlite+aiosqlite:///{root}/monitor.db
server:
  listen: 127.0.0.1:{port}
defaults:
  interval: 1s
  timeout: 500ms
  trend: {{warmup: 3}}  # latency ratios within seconds, not the default 30 rounds
sites:
  - name: up
    url: http://127.0.0.1:{hello}/
    origins:
      - {{name: origin-1, address: "127.0.0.1:{hello}"}}
  - name: down
    url: http://127.0.0.1:{closed}/
  - name: hidden  # the edge answers, its origin refuses: degraded
    url: http://127.0.0.1:{hello}/
    origins:
      - {{name: origin-1, address: "127.0.0.1:{closed}"}}
  - name: tls  # a certificate that expires in three days
    url: https://127.0.0.1:{tls}/
    checks:
      - {{kind: tls, min_days: 14}}
notifiers:  # nothing listens there: deliveries fail and are retried, and counted
  hook: {{url: "json://127.0.0.1:{closed}/hook"}}
alerts:
  - notify: [hook]
alerting: {{group_window: 1s}}
"""


def _expiring_tls(root: Path) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 that expires in three days; the
    CA that signed it goes to ``root/ca.pem``."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    leaf = ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=3))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


def _prometheus_config(root: Path, targets: list[str]) -> Path:
    """The shipped config, scraping ``targets`` every second with the shipped rules."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES)]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": targets}]
    path = root / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    find_binary("prometheus")  # skip (or fail) before starting anything
    root = tmp_path_factory.mktemp("prometheus")
    with ExitStack() as running:
        hello = running.enter_context(serving_hello())
        tls = running.enter_context(serving_hello(_expiring_tls(root)))
        closed = running.enter_context(closed_port())
        port = free_port()
        config = root / "config.yaml"
        config.write_text(
            DAEMON_CONFIG.format(root=root, port=port, hello=hello, closed=closed, tls=tls),
            encoding="utf-8",
        )
        env = {"SSL_CERT_FILE": str(root / "ca.pem")}
        daemon = running.enter_context(running_daemon(config, port, env))
        # A second target that is down, as a dead daemon would be.
        targets = [f"127.0.0.1:{port}", f"127.0.0.1:{closed}"]
        prometheus = running.enter_context(running_prometheus(_prometheus_config(root, targets)))
        _scraped_twice(prometheus)
        with daemon.paused():
            time.sleep(3.0)  # three planned runs of every site go by
        yield Stack(daemon, prometheus)


def _scraped_twice(prometheus: Prometheus) -> None:
    """Wait until Prometheus holds two scrapes of the daemon: a later jump is an increase."""
    expr = "count_over_time(monitor_scheduler_missed_runs_total[1m]) >= 2"
    assert prometheus.wait_for(expr, time.monotonic() + 20), "the daemon was never scraped"


# --- promtool -----------------------------------------------------------------------------


def test_shipped_prometheus_config_and_its_rules_pass_promtool() -> None:
    checked = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


def test_shipped_rules_pass_promtool() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_live_metrics_page_passes_promtool(stack: Stack) -> None:
    page = stack.daemon.metrics_page()
    # Every kind of series is on the page: HTTP phases, a TLS probe, an origin, a failure.
    for part in (
        b"monitor_check_duration_seconds_bucket{",
        b'kind="tls"',
        b'role="origin"',
        b'result="failure"',
        b"probe_http_content_length{",
        b"monitor_cert_expiry_seconds{",
    ):
        assert part in page, part
    checked = promtool("check", "metrics", stdin=page)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


# --- Prometheus's view --------------------------------------------------------------------


def _by_target(samples: list[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    labels = ("monitor", "role", "origin", "kind")
    return {
        tuple(sample["metric"].get(name, "") for name in labels): float(sample["value"][1])
        for sample in samples
    }


def test_probe_success_per_site(stack: Stack) -> None:
    expected = {
        ("up", "edge", "", "http"): 1.0,
        ("up", "origin", "origin-1", "http"): 1.0,
        ("down", "edge", "", "http"): 0.0,
        ("hidden", "edge", "", "http"): 1.0,
        ("hidden", "origin", "origin-1", "http"): 0.0,
        ("tls", "edge", "", "http"): 1.0,
        ("tls", "edge", "", "tls"): 0.0,  # it expires sooner than min_days
    }
    deadline = time.monotonic() + DEADLINE
    seen: dict[tuple[str, ...], float] = {}
    while time.monotonic() < deadline:
        seen = _by_target(stack.prometheus.query("probe_success"))
        if seen == expected:
            return
        time.sleep(0.5)  # a round cut short by the freeze heals on the next one
    assert seen == expected


def test_dashboard_variable_lists_every_site(stack: Stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    (variable,) = (v for v in dashboard["templating"]["list"] if v["name"] == "monitor")
    match = re.fullmatch(r"label_values\((\w+), monitor\)", variable["definition"])
    assert match, variable["definition"]
    values = stack.prometheus.api("label/monitor/values", **{"match[]": match.group(1)})
    assert set(values) == set(SITES)


def _check_has_data(stack: Stack, expr: str) -> None:
    deadline = time.monotonic() + DEADLINE
    result = stack.prometheus.query(expr)  # parses, or the test fails here
    unfed = metric_names(expr) & NOT_YET_FED
    if unfed:
        pytest.skip(f"parses; needs data from {sorted(unfed)}, which the daemon does not feed yet")
    result = result or stack.prometheus.wait_for(expr, deadline)
    assert result, f"no data in {DEADLINE} s for: {expr}"


@pytest.mark.parametrize("expr", dashboard_exprs())
def test_dashboard_expression_parses_and_has_data(stack: Stack, expr: str) -> None:
    _check_has_data(stack, filled_in(expr))


@pytest.mark.parametrize("expr", rule_exprs())
def test_rule_expression_parses_and_has_data(stack: Stack, expr: str) -> None:
    # The sites are chosen so that every alert fires: each expression has data.
    _check_has_data(stack, expr)


def test_rules_evaluate_without_errors(stack: Stack) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        groups = stack.prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if all(rule["evaluationTime"] > 0 for rule in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rules) == len(rule_exprs())
    assert {rule["name"]: rule["health"] for rule in rules} == {
        rule["name"]: "ok" for rule in rules
    }


def test_alerts_fire_with_their_templates_expanded(stack: Stack) -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    rules = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    expected = {rule["alert"] for rule in rules if not metric_names(rule["expr"]) & NOT_YET_FED}
    deadline = time.monotonic() + DEADLINE
    while True:
        alerts = stack.prometheus.api("alerts")["alerts"]
        active = {alert["labels"]["alertname"] for alert in alerts}
        if expected <= active or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert expected <= active  # pending or firing
    for alert in alerts:
        for text in alert["annotations"].values():
            assert "error" not in text, alert
            assert "<no value>" not in text, alert
