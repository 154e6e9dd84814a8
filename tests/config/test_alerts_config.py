"""The alert keys of the config (mistakes: tests/configs/invalid-alert*.yaml and friends)."""

from __future__ import annotations

from monitor.config.load import parse_config
from monitor.judge.alerting import ROUTABLE, AlertSettings, Event, Notifier, Route, Templates

ISSUE = """
sites:
  - name: shop
    url: https://shop.example.com/
  - name: shop-eu
    url: https://eu.shop.example.com/
  - name: blog
    url: https://blog.example.com/
notifiers:
  ops-slack:  {url: "slack://${SLACK_TOKEN_A}/${SLACK_TOKEN_B}/${SLACK_TOKEN_C}/#ops"}
  oncall:     {url: "mailtos://${SMTP_USER}:${SMTP_PASS}@smtp.example.com?to=oncall@example.com"}
  hook:       {url: "json://alerts.internal:8080/monitor"}
alerts:
  - notify: [ops-slack]
    events: [down, degraded, recovered, flapping]
    reminder: 30m               # repeat while still down
  - notify: [oncall]
    events: [down]
    sites: ["shop*"]            # names or globs
    after: 10m                  # escalation: only if still down after 10 minutes
"""
ENV = {
    "SLACK_TOKEN_A": "T1JJ3T3L2",
    "SLACK_TOKEN_B": "A1BRTD4JD",
    "SLACK_TOKEN_C": "TIiajkdnlazkcOXrIdevi7FQ",
    "SMTP_USER": "monitor",
    "SMTP_PASS": "s3cret",
}


def test_the_example_of_the_issue() -> None:
    alerts = parse_config(ISSUE, file="config.yaml", env=ENV).alerts
    assert alerts.notifiers == (
        Notifier("ops-slack", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops"),
        Notifier("oncall", "mailtos://monitor:s3cret@smtp.example.com?to=oncall@example.com"),
        Notifier("hook", "json://alerts.internal:8080/monitor"),
    )
    assert alerts.routes == (
        Route(notify=("ops-slack",), events=ROUTABLE, reminder=1800.0),
        Route(notify=("oncall",), events=(Event.DOWN,), sites=("shop*",), after=600.0),
    )
    assert alerts.canary is None
    assert alerts.self_notify is None  # every notifier hears of the daemon's own trouble


def test_without_alert_keys_nothing_is_sent() -> None:
    text = "sites:\n  - name: shop\n    url: https://shop.example.com/\n"
    assert parse_config(text, file="config.yaml", env={}).alerts == AlertSettings()


def test_every_alerting_setting() -> None:
    text = (
        ISSUE
        + """
checks:
  - name: uplink
    kind: tcp
    host: 192.0.2.1
    port: 443
alerting:
  canary: uplink
  group_window: 1m
  group_min: 5
  rate_limit: 10
  rate_period: 30m
  max_age: 12h
  timeout: 20s
  self_notify: [oncall]
  templates:
    title: "{event_upper} {monitor} ({cause})"
    body: "{summary}\\n{evidence_lines}\\nref {ref}"
"""
    )
    alerts = parse_config(text, file="config.yaml", env=ENV).alerts
    assert (alerts.canary, alerts.group_window, alerts.group_min) == ("uplink", 60.0, 5)
    assert (alerts.rate_limit, alerts.rate_period) == (10, 1800.0)
    assert (alerts.max_age, alerts.timeout, alerts.self_notify) == (43200.0, 20.0, ("oncall",))
    assert alerts.templates == Templates(
        title="{event_upper} {monitor} ({cause})", body="{summary}\n{evidence_lines}\nref {ref}"
    )


def test_an_empty_self_notify_keeps_the_daemons_trouble_to_the_log() -> None:
    text = ISSUE + "alerting:\n  self_notify: []\n"
    assert parse_config(text, file="config.yaml", env=ENV).alerts.self_notify == ()
