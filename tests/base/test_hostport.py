"""Userinfo taken out of URLs shown to people."""

from __future__ import annotations

import pytest

from monitor.hostport import redacted_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://shop.test/", "http://shop.test/"),
        ("https://ops:s3cret@shop.test:8443/a?b=c", "https://***@shop.test:8443/a?b=c"),
        ("http://t0ken@shop.test/", "http://***@shop.test/"),
        ("http://a:b@c@shop.test/", "http://***@shop.test/"),
        ("http://shop.test/mail?to=ops@shop.test", "http://shop.test/mail?to=ops@shop.test"),
        ("http://shop.test/@home", "http://shop.test/@home"),
        ("http://ops:pw@shop.test#x@y", "http://***@shop.test#x@y"),
        ("shop.test:80", "shop.test:80"),
        # Scheme-relative, as a Location may be: the authority follows the leading //.
        ("//ops:s3cret@shop.test/x", "//***@shop.test/x"),
        ("//t0ken@shop.test", "//***@shop.test"),
        ("//shop.test/x", "//shop.test/x"),
        ("//shop.test/mail?to=ops@shop.test", "//shop.test/mail?to=ops@shop.test"),
        ("//ops:pw@shop.test/x?next=http://a.test/", "//***@shop.test/x?next=http://a.test/"),
        ("/login?next=//a.test/", "/login?next=//a.test/"),
    ],
)
def test_redacted_url(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
