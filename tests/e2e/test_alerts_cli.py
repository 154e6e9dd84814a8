"""``monitor test-alert`` and what ``monitor validate`` says of notifiers, as a user runs them."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from tests.support.receivers import free_port, webhook


def write(tmp_path: Path, notifiers: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
sites:
  - name: shop
    url: https://shop.example.com/
notifiers:
{notifiers}
alerts:
  - notify: [hook]
""",
        encoding="utf-8",
    )
    return path


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_test_alert_sends_a_message_and_says_so(tmp_path: Path) -> None:
    async with webhook() as hook:
        path = write(tmp_path, f'  hook: {{url: "{hook.url}"}}')
        code, out, err = await run("test-alert", "hook", "-c", str(path))
    assert (code, out, err) == (0, "hook: sent\n", "")
    [payload] = hook.received
    assert payload["title"] == "[TEST] monitor: hook works"
    assert "alerts through the notifier hook arrive" in payload["message"]


async def test_test_alert_to_a_receiver_that_fails_exits_1(tmp_path: Path) -> None:
    async with webhook() as hook:
        hook.fail = 1
        path = write(tmp_path, f'  hook: {{url: "{hook.url}"}}')
        code, out, err = await run("test-alert", "hook", "-c", str(path))
    assert (code, out) == (1, "")
    said = "Failed to send JSON POST notification: Internal server error., error=500."
    assert err == f"monitor test-alert: hook: not sent: {said}\n"


async def test_test_alert_to_nothing_listening_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, f'  hook: {{url: "json://127.0.0.1:{free_port()}/alerts"}}')
    code, _, err = await run("test-alert", "hook", "-c", str(path))
    assert code == 1
    assert err.startswith("monitor test-alert: hook: not sent: A Connection error occurred")


def test_test_alert_to_an_unknown_notifier_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '  hook: {url: "json://127.0.0.1:9/alerts"}')
    assert main(["test-alert", "pager", "-c", str(path)]) == 2
    assert capsys.readouterr().err == "monitor test-alert: no notifier 'pager' (known: hook)\n"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(
            "slack://T1JJ3T3L2/#ops",
            "Apprise cannot use this slack:// URL: check its fields (tokens, host, targets)",
            id="slack-missing-tokens",
        ),
        pytest.param("nosuch://host/path", "Apprise knows no service nosuch://", id="scheme"),
    ],
)
def test_validate_refuses_a_url_apprise_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    path = write(tmp_path, f'  hook: {{url: "{url}"}}')
    assert main(["validate", "-c", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"monitor: {path}: notifiers.hook.url: {message}\n"
    assert captured.out == ""


def test_validate_counts_the_notifiers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '  hook: {url: "json://alerts.example.com/monitor"}')
    assert main(["validate", "-c", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok (1 site, 0 checks, 1 notifier)\n"
