"""The TCP probe against real servers on the loopback interface."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from time import perf_counter

import pytest

from monitor.models import Cause, Kind, ProbeContext, ProbeResult, Role, TcpCheck
from monitor.probes import make_clients
from monitor.probes.tcp import judge_reply, probe
from tests.support.servers import Handler, free_port, hang_up, say_nothing, serving

TIMEOUT = 0.5
CTX = ProbeContext("tcp", Role.EDGE, None, datetime(2026, 1, 1, tzinfo=UTC), TIMEOUT)

# Handlers talk, then return; ``serving`` closes the connection and waits for the client.


async def hang_up_after_a_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readline()


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Speak first, like SMTP."""
    writer.write(b"220 mail.shop.test ESMTP\r\n")
    await reader.read()


async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer a Redis-style PING."""
    if await reader.readline() == b"PING\r\n":
        writer.write(b"+PONG\r\n")
    await reader.read()


async def run(spec: TcpCheck) -> ProbeResult:
    async with make_clients() as clients:  # unused by TCP, but part of the signature
        return await probe(clients, CTX, spec)


@pytest.mark.parametrize(
    ("handler", "send", "expect_reply", "cause", "detail", "answers"),
    [
        pytest.param(hang_up, None, None, Cause.OK, "", (), id="connect-only"),
        pytest.param(
            greet, None, "ESMTP", Cause.OK, "", ("220 mail.shop.test ESMTP",), id="banner"
        ),
        pytest.param(pong, "PING\r\n", "+PONG", Cause.OK, "", ("+PONG",), id="send-and-expect"),
        pytest.param(pong, "PING\r\n", None, Cause.OK, "", (), id="send-only"),
        pytest.param(
            greet,
            None,
            "LMTP",
            Cause.CONTENT_MISMATCH,
            "reply does not contain 'LMTP'",
            ("220 mail.shop.test ESMTP",),
            id="reply-without-the-text",
        ),
        pytest.param(
            hang_up_after_a_line,
            "PING\r\n",
            "+PONG",
            Cause.PROTOCOL_ERROR,
            "server closed the connection without replying",
            (),
            id="hung-up-without-reply",
        ),
        pytest.param(
            say_nothing,
            "PING\r\n",
            "+PONG",
            Cause.TIMEOUT,
            f"no reply within {TIMEOUT:g}s",
            (),
            id="no-reply",
        ),
    ],
)
async def test_conversation(
    handler: Handler,
    send: str | None,
    expect_reply: str | None,
    cause: Cause,
    detail: str,
    answers: tuple[str, ...],
) -> None:
    async with serving(handler) as port:
        started = perf_counter()
        result = await run(TcpCheck("127.0.0.1", port, send, expect_reply))

    assert (result.cause, result.ok, result.detail) == (cause, cause is Cause.OK, detail)
    assert result.answers == answers
    assert result.failed == (("expect_reply",) if cause is Cause.CONTENT_MISMATCH else ())
    assert (result.kind, result.target) == (Kind.TCP, f"127.0.0.1:{port}")
    assert (result.peer_ip, result.peer_port) == ("127.0.0.1", port)
    assert result.phases.connect is not None
    assert perf_counter() - started < TIMEOUT + 0.5


async def test_closed_port_is_refused() -> None:
    port = free_port()
    result = await run(TcpCheck("127.0.0.1", port))

    assert result.cause is Cause.CONNECT_REFUSED
    assert result.detail == f"connection refused (127.0.0.1:{port})"
    assert result.phases.connect is None
    assert result.peer_ip is None


async def test_a_name_is_resolved_and_each_address_tried() -> None:
    # "localhost" may resolve to ::1 first, where nothing listens: the next address must win.
    async with serving(hang_up) as port:
        result = await run(TcpCheck("localhost", port))

    assert result.ok, result.detail
    assert result.peer_ip == "127.0.0.1"
    assert result.phases.resolve is not None


@pytest.mark.parametrize(
    ("wanted", "reply", "ended", "cause"),
    [
        pytest.param(None, b"", False, Cause.OK, id="nothing-wanted"),
        pytest.param("OK", b"+OK\r\n", False, Cause.OK, id="found"),
        pytest.param("OK", b"-ERR\r\n", True, Cause.CONTENT_MISMATCH, id="other-text-then-end"),
        pytest.param("OK", b"-ERR\r\n", False, Cause.CONTENT_MISMATCH, id="other-text-then-wait"),
        pytest.param("OK", b"", True, Cause.PROTOCOL_ERROR, id="silent-end"),
        pytest.param("OK", b"", False, Cause.TIMEOUT, id="silent-wait"),
        pytest.param("é", "é".encode(), True, Cause.OK, id="utf8"),
    ],
)
def test_judge_reply(wanted: str | None, reply: bytes, ended: bool, cause: Cause) -> None:
    assert judge_reply(wanted, reply, ended=ended, timeout=1.0).cause is cause
