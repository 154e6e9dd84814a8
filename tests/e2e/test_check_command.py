"""`monitor check` as an operator runs it: a real process against a local edge and origin."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
VARNISH_503 = "<h1>Error 503 Backend fetch failed</h1><p>Guru Meditation:</p><p>XID: 32770</p>"


async def _serve(handler: web.Response, host: str) -> tuple[web.AppRunner, int]:
    async def answer(_: web.Request) -> web.Response:
        return handler

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def edge_and_origin() -> AsyncIterator[tuple[int, int]]:
    """A cache on 127.0.0.1 that fails to fetch, and a healthy origin on 127.0.0.2."""
    edge_headers = {
        "Server": "Varnish",
        "Via": "1.1 varnish (Varnish/7.1)",
        "X-Varnish": "32770",
        "Retry-After": "5",
    }
    edge, edge_port = await _serve(
        web.Response(status=503, text=VARNISH_503, headers=edge_headers), "127.0.0.1"
    )
    origin, origin_port = await _serve(
        web.Response(text="shop", headers={"Server": "app"}), "127.0.0.2"
    )
    yield edge_port, origin_port
    await edge.cleanup()
    await origin.cleanup()


async def _monitor(*args: str) -> tuple[int, str, str]:
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


async def test_json_has_the_public_keys_and_both_probes(edge_and_origin: tuple[int, int]) -> None:
    edge, origin = edge_and_origin
    code, out, err = await _monitor(
        "check", f"http://127.0.0.1:{edge}/", "--origin", f"127.0.0.2:{origin}", "--json"
    )
    assert (code, err) == (1, "")
    report = json.loads(out)
    assert {"verdict", "cause", "layer", "hint", "probes"} <= report.keys()
    assert report["verdict"] == "edge_fault"
    edge_probe, origin_probe = report["probes"]
    assert {"role", "name", "ok", "status", "cause", "phases", "headers", "peer"} <= (
        edge_probe.keys()
    )
    assert (edge_probe["role"], edge_probe["ok"], edge_probe["status"]) == ("edge", False, 503)
    assert edge_probe["headers"]["server"] == "Varnish"
    assert edge_probe["headers"]["x-varnish"] == "32770"
    assert edge_probe["peer"] == f"127.0.0.1:{edge}"
    assert (origin_probe["role"], origin_probe["name"], origin_probe["ok"]) == (
        "origin",
        "origin-1",
        True,
    )
    assert origin_probe["peer"] == f"127.0.0.2:{origin}"
    for probe in (edge_probe, origin_probe):
        phases = probe["phases"]
        assert {"resolve", "connect", "processing", "transfer", "total"} <= phases.keys()
        assert phases["connect"] > 0
        assert phases["total"] >= phases["connect"] + phases["processing"]


async def test_text_shows_each_probe_its_phases_and_the_verdict(
    edge_and_origin: tuple[int, int],
) -> None:
    edge, origin = edge_and_origin
    code, out, _ = await _monitor(
        "check", f"http://127.0.0.1:{edge}/", "--origin", f"127.0.0.2:{origin}"
    )
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        "EDGE FAULT: the edge fails (Varnish could not fetch the page from its backend "
        "(HTTP 503)) while every origin answers"
    )
    assert any(line.startswith(f"FAIL edge [http] http://127.0.0.1:{edge}/") for line in lines)
    assert any(line.startswith("ok   origin origin-1 [http]") for line in lines)
    assert sum("connect " in line and "processing " in line for line in lines) == 2
    assert "server: Varnish" in out
    assert "verdict: edge_fault" in out
    assert any(line.startswith("hint: ") for line in lines)


async def test_a_healthy_configured_site_exits_0(
    edge_and_origin: tuple[int, int], tmp_path: Path
) -> None:
    _, origin = edge_and_origin
    config = tmp_path / "config.yaml"
    config.write_text(
        f"sites:\n  - name: shop\n    url: http://127.0.0.2:{origin}/\n"
        "    expect: {body_contains: shop}\n",
        encoding="utf-8",
    )
    code, out, _ = await _monitor("check", "-c", str(config), "shop")
    assert code == 0
    assert out.startswith("UP: every probe answered as expected\n")
    assert out.endswith("verdict: up\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["ftp://x/"], "is not an http:// or https:// URL", id="bad-url"),
        pytest.param(["http://127.0.0.1/", "--timeout", "soon"], "--timeout:", id="bad-timeout"),
        pytest.param(["http://127.0.0.1/", "--origin", "http//x/y"], "--origin", id="bad-origin"),
        pytest.param(
            ["-c", "config.example.yaml", "nope"],
            "no site or check named 'nope'",
            id="unknown-name",
        ),
    ],
)
async def test_bad_usage_exits_2_with_one_line(args: list[str], message: str) -> None:
    code, out, err = await _monitor("check", *args)
    assert (code, out) == (2, "")
    assert err.startswith("monitor check: ")
    assert message in err
    assert len(err.splitlines()) == 1


@pytest.fixture
async def guarded() -> AsyncIterator[int]:
    """A site on 127.0.0.1 that answers 200 only to Basic ops:s3cret, else 401."""

    async def answer(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Basic b3BzOnMzY3JldA==":
            return web.Response(status=401, text="who are you?")
        return web.Response(text="welcome, ops")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner.addresses[0][1]
    await runner.cleanup()


@pytest.mark.parametrize("output", [(), ("--json",)], ids=["text", "json"])
async def test_a_password_in_the_url_authenticates_and_is_never_printed(
    guarded: int, output: tuple[str, ...]
) -> None:
    code, out, err = await _monitor("check", f"http://ops:s3cret@127.0.0.1:{guarded}/", *output)

    assert (code, err) == (0, "")  # up: the server took the URL's credentials
    assert "s3cret" not in out
    assert f"http://***@127.0.0.1:{guarded}/" in out


@pytest.fixture
async def slow_site() -> AsyncIterator[int]:
    """A site on 127.0.0.1 whose every answer is a 200 that takes 0.4 s."""

    async def answer(_: web.Request) -> web.Response:
        await asyncio.sleep(0.4)  # the server's own latency, not a wait of the test
        return web.Response(text="slow but fine")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner.addresses[0][1]
    await runner.cleanup()


@pytest.mark.parametrize("with_origin", [False, True], ids=["alone", "with-origin"])
async def test_a_slow_but_working_site_is_degraded_not_down(
    slow_site: int, tmp_path: Path, with_origin: bool
) -> None:
    """max_latency is what users wait at the edge: a slow 200 is degraded/slow, origins or not."""
    origins = f"    origins: [{{name: app, address: '127.0.0.1:{slow_site}'}}]\n"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"sites:\n  - name: shop\n    url: http://127.0.0.1:{slow_site}/\n"
        "    expect: {max_latency: 200ms}\n" + (origins if with_origin else ""),
        encoding="utf-8",
    )
    code, out, err = await _monitor("check", "-c", str(config), "shop", "--json")

    assert (code, err) == (1, "")
    report = json.loads(out)
    assert (report["verdict"], report["cause"]) == ("degraded", "slow")
    assert [p["ok"] for p in report["probes"]] == [False, True] if with_origin else [False]
    assert "error" not in report["hint"]
