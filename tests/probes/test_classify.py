"""The cause table: responses and exceptions -> cause, detail and failed expectations."""

from __future__ import annotations

import errno
import socket
import ssl

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from monitor import jsonpath
from monitor.models import Cause, Expect, JsonExpect, StatusRange
from monitor.probes.classify import Outcome, RedirectError, classify_exception, classify_response
from monitor.probes.expect import Answer
from monitor.probes.http import wire
from monitor.probes.phases import Stamps

DEFAULT = Expect()
ONLY_200 = Expect(status=(StatusRange(200, 200),))
WELCOME = Expect(body_contains="Welcome")


STATUS_CASES = [
    pytest.param(200, DEFAULT, b"", Outcome(Cause.OK), id="200-ok"),
    pytest.param(301, DEFAULT, b"", Outcome(Cause.OK), id="301-in-default-range"),
    pytest.param(
        503,
        Expect(status=(StatusRange(503, 503),)),
        b"",
        Outcome(Cause.OK),
        id="503-when-configured",
    ),
    pytest.param(
        429,
        DEFAULT,
        b"",
        Outcome(Cause.RATE_LIMITED, "expected status 200-399, got 429", ("status",)),
        id="429-rate-limited",
    ),
    pytest.param(
        502,
        DEFAULT,
        b"",
        Outcome(Cause.BAD_GATEWAY, "expected status 200-399, got 502", ("status",)),
        id="502-bad-gateway",
    ),
    pytest.param(
        503,
        ONLY_200,
        b"",
        Outcome(Cause.SERVICE_UNAVAILABLE, "expected status 200, got 503", ("status",)),
        id="503-service-unavailable",
    ),
    pytest.param(
        504,
        DEFAULT,
        b"",
        Outcome(Cause.GATEWAY_TIMEOUT, "expected status 200-399, got 504", ("status",)),
        id="504-gateway-timeout",
    ),
    pytest.param(
        500,
        DEFAULT,
        b"",
        Outcome(Cause.SERVER_ERROR, "expected status 200-399, got 500", ("status",)),
        id="500-server-error",
    ),
    pytest.param(
        404,
        DEFAULT,
        b"",
        Outcome(Cause.CLIENT_ERROR, "expected status 200-399, got 404", ("status",)),
        id="404-client-error",
    ),
    pytest.param(
        204,
        ONLY_200,
        b"",
        Outcome(Cause.UNEXPECTED_STATUS, "expected status 200, got 204", ("status",)),
        id="204-not-accepted",
    ),
    pytest.param(
        500,
        Expect(status=(StatusRange(200, 200), StatusRange(301, 302))),
        b"",
        Outcome(Cause.SERVER_ERROR, "expected status 200 or 301-302, got 500", ("status",)),
        id="several-ranges-in-detail",
    ),
    pytest.param(
        200, WELCOME, b"<h1>Welcome home</h1>", Outcome(Cause.OK), id="body-contains-found"
    ),
    pytest.param(
        200,
        WELCOME,
        b"<h1>It works!</h1>",
        Outcome(Cause.CONTENT_MISMATCH, "body does not contain 'Welcome'", ("body_contains",)),
        id="body-contains-missing",
    ),
    pytest.param(
        200,
        Expect(body_contains="café"),
        "<p>café</p>".encode(),
        Outcome(Cause.OK),
        id="body-contains-utf8",
    ),
    pytest.param(
        503,
        WELCOME,
        b"Sorry, try later",
        Outcome(
            Cause.SERVICE_UNAVAILABLE,
            "expected status 200-399, got 503",
            ("status", "body_contains"),
        ),
        id="status-cause-wins-both-listed",
    ),
]


@pytest.mark.parametrize(("status", "expect", "body", "expected"), STATUS_CASES)
def test_classify_response(status: int, expect: Expect, body: bytes, expected: Outcome) -> None:
    outcome = classify_response(Answer(status, body), expect)
    assert outcome == expected
    assert outcome.ok is (expected.cause is Cause.OK)


def _key(host: str, port: int, *, is_ssl: bool = False) -> ConnectionKey:
    return ConnectionKey(host, port, is_ssl, True, None, None, None, None)


def _cert_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    # The ssl module only fills these in during a real handshake (the probe tests do one).
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def _wrong_version_error() -> ssl.SSLError:
    """A real OpenSSL error: a TLS client handed a plain-HTTP answer."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="site.test")
    incoming.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(ssl.SSLError) as caught:
        tls.do_handshake()
    return caught.value


def _bad_status_line() -> aiohttp.ClientResponseError:
    url = URL("http://127.0.0.1:8080/")
    info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    message = "Bad status line:\n  Expected HTTP/, RTSP/ or ICE/:\n\n  b'SSH-2.0-OpenSSH_9.6'"
    return aiohttp.ClientResponseError(info, (), status=400, message=message)


START = Stamps(10.0)
CONNECTING = Stamps(10.0, connect_start=10.0)
RESOLVING = Stamps(10.0, connect_start=10.0, dns_start=10.0)
CONNECTED = Stamps(10.0, connect_start=10.0, connect_end=10.5)
HEADERS = Stamps(10.0, connect_start=10.0, connect_end=10.5, headers=11.0)
WEB = _key("site.test", 80)
TLS = _key("site.test", 443, is_ssl=True)

EXCEPTIONS = [
    pytest.param(
        aiohttp.ClientConnectorDNSError(
            _key("nonexistent.invalid", 80),
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        ),
        RESOLVING,
        Outcome(Cause.DNS_NXDOMAIN, "name not found (nonexistent.invalid)"),
        id="gaierror-noname-nxdomain",
    ),
    pytest.param(
        aiohttp.ClientConnectorDNSError(
            WEB, socket.gaierror(socket.EAI_NODATA, "No address associated with hostname")
        ),
        RESOLVING,
        Outcome(Cause.DNS_NXDOMAIN, "name not found (site.test)"),
        id="gaierror-nodata-nxdomain",
    ),
    pytest.param(
        aiohttp.ClientConnectorDNSError(
            WEB, socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        ),
        RESOLVING,
        Outcome(
            Cause.DNS_ERROR, "DNS lookup failed: temporary failure in name resolution (site.test)"
        ),
        id="gaierror-again-dns-error",
    ),
    pytest.param(
        TimeoutError(),
        RESOLVING,
        Outcome(Cause.DNS_TIMEOUT, "no DNS answer within 2s"),
        id="timeout-while-resolving",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(
            _key("127.0.0.1", 1),
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 1)"),
        ),
        CONNECTING,
        Outcome(Cause.CONNECT_REFUSED, "connection refused (127.0.0.1:1)"),
        id="refused",
    ),
    pytest.param(
        # aiohappyeyeballs merges the errors of several addresses into a plain OSError.
        aiohttp.ClientConnectorError(
            WEB, OSError(errno.ECONNREFUSED, "Multiple exceptions: [Errno 111] ...")
        ),
        CONNECTING,
        Outcome(Cause.CONNECT_REFUSED, "connection refused (site.test:80)"),
        id="refused-on-every-address",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(WEB, OSError(errno.ENETUNREACH, "Network is unreachable")),
        CONNECTING,
        Outcome(Cause.NETWORK_UNREACHABLE, "network unreachable (site.test:80)"),
        id="network-unreachable",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(WEB, OSError(errno.EHOSTUNREACH, "No route to host")),
        CONNECTING,
        Outcome(Cause.NETWORK_UNREACHABLE, "host unreachable (site.test:80)"),
        id="host-unreachable",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(WEB, PermissionError(errno.EPERM, "Operation not permitted")),
        CONNECTING,
        Outcome(
            Cause.NETWORK_UNREACHABLE, "cannot connect: operation not permitted (site.test:80)"
        ),
        id="other-socket-error-before-connecting",
    ),
    pytest.param(
        aiohttp.ConnectionTimeoutError("Connection timeout to host http://site.test/"),
        CONNECTING,
        Outcome(Cause.CONNECT_TIMEOUT, "no connection within 2s"),
        id="aiohttp-connection-timeout",
    ),
    pytest.param(
        # The kernel gave up on the SYN before our timeout did.
        aiohttp.ClientConnectorError(WEB, TimeoutError(errno.ETIMEDOUT, "Connection timed out")),
        CONNECTING,
        Outcome(Cause.CONNECT_TIMEOUT, "no connection within 2s"),
        id="kernel-connect-timeout",
    ),
    pytest.param(
        TimeoutError(),
        START,
        Outcome(Cause.CONNECT_TIMEOUT, "no connection within 2s"),
        id="timeout-in-pool",
    ),
    pytest.param(
        aiohttp.ClientConnectorCertificateError(TLS, _cert_error(10, "certificate has expired")),
        CONNECTING,
        Outcome(Cause.TLS_CERT_EXPIRED, "certificate has expired"),
        id="cert-expired",
    ),
    pytest.param(
        aiohttp.ClientConnectorCertificateError(
            TLS, _cert_error(20, "unable to get local issuer certificate")
        ),
        CONNECTING,
        Outcome(
            Cause.TLS_CERT_INVALID,
            "certificate not accepted: unable to get local issuer certificate",
        ),
        id="cert-untrusted",
    ),
    pytest.param(
        aiohttp.ClientConnectorSSLError(TLS, _wrong_version_error()),
        CONNECTING,
        Outcome(Cause.TLS_HANDSHAKE, "TLS handshake failed: wrong version number"),
        id="tls-to-plain-http",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(TLS, ConnectionResetError()),
        CONNECTING,
        Outcome(Cause.TLS_HANDSHAKE, "connection reset during TLS handshake (site.test:443)"),
        id="reset-during-handshake",
    ),
    pytest.param(
        TimeoutError(),
        CONNECTED,
        Outcome(Cause.TIMEOUT, "no first byte within 2s"),
        id="timeout-before-headers",
    ),
    pytest.param(
        aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
        CONNECTED,
        Outcome(Cause.TIMEOUT, "no first byte within 2s"),
        id="aiohttp-socket-timeout-before-headers",
    ),
    pytest.param(
        TimeoutError(),
        HEADERS,
        Outcome(Cause.READ_TIMEOUT, "body not complete within 2s"),
        id="timeout-in-body",
    ),
    pytest.param(
        aiohttp.ServerDisconnectedError(),
        CONNECTED,
        Outcome(Cause.PROTOCOL_ERROR, "server closed the connection without answering"),
        id="server-hung-up",
    ),
    pytest.param(
        _bad_status_line(),
        CONNECTED,
        Outcome(
            Cause.PROTOCOL_ERROR,
            "invalid HTTP response: Bad status line: Expected HTTP/, RTSP/ or ICE/: "
            "b'SSH-2.0-OpenSSH_9.6'",
        ),
        id="not-http",
    ),
    pytest.param(
        aiohttp.ClientPayloadError("Response payload is not completed"),
        HEADERS,
        Outcome(Cause.PROTOCOL_ERROR, "broken body: Response payload is not completed"),
        id="body-cut-short",
    ),
    pytest.param(
        aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
        HEADERS,
        Outcome(Cause.PROTOCOL_ERROR, "connection reset by the server"),
        id="reset-after-connecting",
    ),
    # The same failures as monitor.probes.http.wire (the client without aiohttp) raises them.
    pytest.param(
        wire.ConnectFailed("127.0.0.1", 1, ConnectionRefusedError(errno.ECONNREFUSED, "refused")),
        CONNECTING,
        Outcome(Cause.CONNECT_REFUSED, "connection refused (127.0.0.1:1)"),
        id="lean-refused",
    ),
    pytest.param(
        wire.ConnectFailed("nowhere.test", 80, socket.gaierror(socket.EAI_NONAME, "unknown")),
        RESOLVING,
        Outcome(Cause.DNS_NXDOMAIN, "name not found (nowhere.test)"),
        id="lean-nxdomain",
    ),
    pytest.param(
        wire.ConnectFailed("127.0.0.1", 443, ConnectionResetError(errno.ECONNRESET, "reset")),
        CONNECTING,
        Outcome(Cause.TLS_HANDSHAKE, "connection reset during TLS handshake (127.0.0.1:443)"),
        id="lean-reset-in-handshake",
    ),
    pytest.param(
        wire.Disconnected(),
        CONNECTED,
        Outcome(Cause.PROTOCOL_ERROR, "server closed the connection without answering"),
        id="lean-server-hung-up",
    ),
    pytest.param(
        wire.BadResponse("Expected HTTP/"),
        CONNECTED,
        Outcome(Cause.PROTOCOL_ERROR, "invalid HTTP response: Expected HTTP/"),
        id="lean-not-http",
    ),
    pytest.param(
        wire.BrokenBody("the server hung up before the body was complete"),
        HEADERS,
        Outcome(
            Cause.PROTOCOL_ERROR,
            "broken body: the server hung up before the body was complete",
        ),
        id="lean-body-cut-short",
    ),
    pytest.param(
        RedirectError("too many redirects (more than 10)"),
        HEADERS,
        Outcome(Cause.PROTOCOL_ERROR, "too many redirects (more than 10)"),
        id="redirects-not-followed",
    ),
    pytest.param(
        aiohttp.ClientConnectionError("Connection lost: [Errno 32] Broken pipe"),
        CONNECTED,
        Outcome(Cause.PROTOCOL_ERROR, "Connection lost: [Errno 32] Broken pipe"),
        id="other-error-after-connecting",
    ),
]


@pytest.mark.parametrize(("exc", "stamps", "expected"), EXCEPTIONS)
def test_classify_exception(exc: Exception, stamps: Stamps, expected: Outcome) -> None:
    assert classify_exception(exc, stamps, timeout=2.0) == expected


def test_long_messages_are_cut_to_one_short_line() -> None:
    exc = aiohttp.ClientConnectionError("x" * 500 + "\nsecond line")
    detail = classify_exception(exc, CONNECTED, timeout=2.0).detail
    assert "\n" not in detail
    assert len(detail) <= 160


JSON_BODY = b'{"data": {"state": "down", "up": true, "count": 3, "items": [{"name": "db"}]}}'
RESPONSE_HEADERS = (("X-Cache", "MISS"), ("x-cache", "HIT from edge"), ("Server", "nginx"))


def _json(*expects: JsonExpect) -> Expect:
    return Expect(json=expects)


EXPECTATION_CASES = [
    pytest.param(
        Answer(200, b"all good"),
        Expect(body_not_contains="Error"),
        Outcome(Cause.OK),
        id="body-not-contains-absent",
    ),
    pytest.param(
        Answer(200, b"Fatal Error"),
        Expect(body_not_contains="Error"),
        Outcome(Cause.CONTENT_MISMATCH, "body contains 'Error'", ("body_not_contains",)),
        id="body-not-contains-present",
    ),
    pytest.param(
        Answer(200, b"version 2.14.1"),
        Expect(body_matches=r"version 2\.\d+"),
        Outcome(Cause.OK),
        id="body-matches",
    ),
    pytest.param(
        Answer(200, b"version 1.9"),
        Expect(body_matches=r"version 2\.\d+"),
        Outcome(
            Cause.CONTENT_MISMATCH, "body does not match 'version 2\\\\.\\\\d+'", ("body_matches",)
        ),
        id="body-does-not-match",
    ),
    pytest.param(
        Answer(200, JSON_BODY),
        _json(JsonExpect("data.state", equals="down"), JsonExpect("data.items[0].name", "db")),
        Outcome(Cause.OK),
        id="json-equals",
    ),
    pytest.param(
        Answer(200, JSON_BODY),
        _json(JsonExpect("data.count", equals=3.0), JsonExpect("data.up", equals=True)),
        Outcome(Cause.OK),
        id="json-equals-numbers-and-booleans",
    ),
    pytest.param(
        Answer(200, JSON_BODY),
        _json(JsonExpect("data.state", equals="up")),
        Outcome(Cause.CONTENT_MISMATCH, 'json data.state: expected "up", got "down"', ("json",)),
        id="json-not-equal",
    ),
    pytest.param(
        Answer(200, JSON_BODY),
        _json(JsonExpect("data.up", equals=1)),
        Outcome(Cause.CONTENT_MISMATCH, "json data.up: expected 1, got true", ("json",)),
        id="json-true-is-not-1",
    ),
    pytest.param(
        Answer(200, JSON_BODY),
        _json(JsonExpect("data.count", matches=r"^\d+$"), JsonExpect("data.state", matches="do")),
        Outcome(Cause.OK),
        id="json-matches-text-of-number-and-string",
    ),
    pytest.param(
        Answer(200, JSON_BODY),
        _json(JsonExpect("data.state", matches="^up$")),
        Outcome(
            Cause.CONTENT_MISMATCH, "json data.state: \"down\" does not match '^up$'", ("json",)
        ),
        id="json-does-not-match",
    ),
    pytest.param(
        Answer(200, JSON_BODY),
        _json(JsonExpect("data.items[1].name", equals="db")),
        Outcome(
            Cause.CONTENT_MISMATCH, "json data.items[1].name: data.items[1] not found", ("json",)
        ),
        id="json-index-missing",
    ),
    pytest.param(
        Answer(200, JSON_BODY),
        _json(JsonExpect("data.state.code", equals=1)),
        Outcome(
            Cause.CONTENT_MISMATCH, "json data.state.code: data.state.code not found", ("json",)
        ),
        id="json-step-into-a-string",
    ),
    pytest.param(
        Answer(200, b"<html>oops</html>"),
        _json(JsonExpect("data.state", equals="up")),
        Outcome(Cause.CONTENT_MISMATCH, "json data.state: body is not JSON", ("json",)),
        id="json-body-not-json",
    ),
    pytest.param(
        Answer(200, b"[" * 100_000),
        _json(JsonExpect("a", equals=1)),
        Outcome(Cause.CONTENT_MISMATCH, "json a: body is not JSON", ("json",)),
        id="json-nested-too-deep",
    ),
    pytest.param(
        Answer(200, b'{"data": ', body_truncated=True),
        _json(JsonExpect("data", equals=1)),
        Outcome(Cause.CONTENT_MISMATCH, "json data: body is not JSON (cut at 9 bytes)", ("json",)),
        id="json-body-cut-short",
    ),
    pytest.param(
        Answer(200, headers=RESPONSE_HEADERS),
        Expect(headers=(("X-CACHE", "^HIT"), ("server", "nginx"))),
        Outcome(Cause.OK),
        id="headers-any-value-case-insensitive-name",
    ),
    pytest.param(
        Answer(200, headers=RESPONSE_HEADERS),
        Expect(headers=(("Server", "^Apache"),)),
        Outcome(
            Cause.CONTENT_MISMATCH,
            "header Server: \"nginx\" does not match '^Apache'",
            ("headers",),
        ),
        id="header-does-not-match",
    ),
    pytest.param(
        Answer(200, headers=RESPONSE_HEADERS),
        Expect(headers=(("CF-Ray", "."),)),
        Outcome(Cause.CONTENT_MISMATCH, "header CF-Ray missing", ("headers",)),
        id="header-missing",
    ),
    pytest.param(
        Answer(200, latency=0.2),
        Expect(max_latency=0.5),
        Outcome(Cause.OK),
        id="fast-enough",
    ),
    pytest.param(
        Answer(200, latency=0.75),
        Expect(max_latency=0.5),
        Outcome(Cause.SLOW, "took 0.75s, more than 0.5s", ("max_latency",)),
        id="slow",
    ),
    pytest.param(
        Answer(200, b"Error", latency=0.75),
        Expect(body_not_contains="Error", max_latency=0.5),
        Outcome(
            Cause.CONTENT_MISMATCH, "body contains 'Error'", ("body_not_contains", "max_latency")
        ),
        id="content-beats-slow",
    ),
    pytest.param(
        Answer(500, b"{}", latency=0.75),
        Expect(body_contains="ok", json=(JsonExpect("a"),), max_latency=0.5),
        Outcome(
            Cause.SERVER_ERROR,
            "expected status 200-399, got 500",
            ("status", "body_contains", "json", "max_latency"),
        ),
        id="status-beats-all-every-failure-named",
    ),
]


@pytest.mark.parametrize(("answer", "expect", "expected"), EXPECTATION_CASES)
def test_expectations(answer: Answer, expect: Expect, expected: Outcome) -> None:
    assert classify_response(answer, expect) == expected


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        pytest.param("state", ("state",), id="key"),
        pytest.param("a.b[0].c", ("a", "b", 0, "c"), id="nested"),
        pytest.param("[2].name", (2, "name"), id="top-level-list"),
        pytest.param("m[0][1]", ("m", 0, 1), id="list-in-list"),
        pytest.param("a.0", ("a", "0"), id="digit-key-is-a-key"),
        pytest.param("x-y.z_1", ("x-y", "z_1"), id="punctuation-in-keys"),
    ],
)
def test_json_path(path: str, steps: tuple[jsonpath.Step, ...]) -> None:
    assert jsonpath.parse(path) == steps
    assert jsonpath.text(steps) == path


@pytest.mark.parametrize("path", ["", ".a", "a.", "a..b", "a[", "a[x]", "a[-1]", "a]"])
def test_bad_json_path_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="invalid JSON path"):
        jsonpath.parse(path)
