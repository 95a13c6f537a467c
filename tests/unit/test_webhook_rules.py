"""Webhook rules in-process: Standard Webhooks signatures (checked with the independent
`standardwebhooks` package), secrets sealed at rest, the SSRF guard with a test resolver."""
from __future__ import annotations

import base64
import ipaddress
import os
import time

import pytest
from cryptography.exceptions import InvalidTag
from standardwebhooks import Webhook, WebhookVerificationError

from services.webhooks import signing, ssrf, urls
from services.webhooks.secretbox import SecretBox

BODY = b'{"id":"job-1/completed","status":"completed"}'


def test_our_signature_verifies_with_the_standard_and_a_rotation_sends_both():
    old, new = signing.new_secret(), signing.new_secret()
    assert old.startswith("whsec_") and old != new
    headers = signing.headers([new, old], "job-1/completed", int(time.time()), BODY)
    assert Webhook(old).verify(BODY, headers) == Webhook(new).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):  # the body is what is signed
        Webhook(new).verify(BODY.replace(b"completed", b"failed"), headers)


def test_secrets_are_sealed_and_bound_to_their_endpoint():
    box = SecretBox(base64.b64encode(os.urandom(32)).decode())
    secret = signing.new_secret()
    sealed = box.seal(secret, "wh_a")
    assert secret not in sealed and box.open(sealed, "wh_a") == secret
    with pytest.raises(InvalidTag):
        box.open(sealed, "wh_b")
    with pytest.raises(ValueError, match="WEBHOOK_SECRETS_KEY"):
        SecretBox("too-short")


def resolver(table):
    return lambda host, port: table[host]


@pytest.mark.parametrize("url, words", [
    ("https://169.254.169.254/computeMetadata/v1/", "link-local"),
    ("https://metadata.google.internal/", "link-local"),
    ("https://[::1]/", "loopback"),
    ("https://[fd00::1]/", "private"),
    ("https://[::ffff:10.0.0.1]/", "private"),
    ("https://inside.example/", "private"),
    ("https://cgnat.example/", "not globally routable"),
    ("https://rebind.example/", "private"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://[ff02::1]/", "multicast"),
    ("http://public.example/", "https"),
    ("https://user:pw@public.example/", "credentials"),
])
def test_private_and_special_addresses_are_refused_with_a_reason(url, words):
    table = {"metadata.google.internal": ["169.254.169.254"], "inside.example": ["192.168.1.20"],
             "cgnat.example": ["100.64.0.7"], "rebind.example": ["93.184.216.34", "10.0.0.5"],
             "public.example": ["93.184.216.34"]}
    with pytest.raises(ssrf.Refused) as refused:
        ssrf.check(url, frozenset(), resolver(table))
    assert words in refused.value.reason


def test_a_public_name_is_pinned_to_the_address_that_was_checked():
    target = ssrf.check("https://hooks.example:8443/in?x=1", frozenset(), resolver({"hooks.example": ["93.184.216.34"]}))
    assert (target.address, target.port, target.path, target.host) == ("93.184.216.34", 8443, "/in?x=1", "hooks.example")


def test_the_allow_list_admits_local_receivers_over_http():
    target = ssrf.check("http://127.0.0.1:9999/hook", frozenset({"127.0.0.1"}), resolver({}))
    assert target.address == "127.0.0.1"
    with pytest.raises(ssrf.Refused):
        ssrf.check("http://127.0.0.2:9999/hook", frozenset({"127.0.0.1"}), resolver({}))


@pytest.mark.parametrize("address", [
    "fec0::1", "feff:ffff::1",          # site-local (deprecated, RFC 3879)
    "192.88.99.1", "192.88.99.254",     # 6to4 relay anycast (deprecated, RFC 7526)
])
def test_deprecated_site_local_and_6to4_relay_addresses_are_refused(address):
    shown = f"[{address}]" if ":" in address else address
    with pytest.raises(ssrf.Refused):
        ssrf.check(f"https://{shown}/hook", frozenset(), resolver({}))
    with pytest.raises(ssrf.Refused):  # and behind a name
        ssrf.check("https://hooks.example/", frozenset(), resolver({"hooks.example": [address]}))


@pytest.mark.parametrize("url, normalised", [
    ("http://127.0.0.1/a b", "http://127.0.0.1/a%20b"),
    ("http://127.0.0.1/é", "http://127.0.0.1/%C3%A9"),
    ("https://hooks.example/a b/é?q=ü x&r=\"'<>#frag", "https://hooks.example/a%20b/%C3%A9?q=%C3%BC%20x&r=%22%27%3C%3E"),
    ("HTTPS://Bücher.EXAMPLE:443/in", "https://xn--bcher-kva.example/in"),  # IDNA (UTS #46), default port dropped
    ("https://hooks.example:8443", "https://hooks.example:8443/"),
    ("https://hooks.example/a/./b/../c/%2e%2e/d", "https://hooks.example/a/d"),
    ("https://hooks.example/already%20encoded%zz", "https://hooks.example/already%20encoded%zz"),  # % kept as written
    ("https://hooks.example\\in\\x?a\\b", "https://hooks.example/in/x?a\\b"),
    ("  https://hooks.example/a\tb\n ", "https://hooks.example/ab"),
    ("https://ex%61mple.com/", "https://example.com/"),
    ("https://evil.example\\@good.example/", "https://evil.example/@good.example/"),  # as a browser: never good.example
    ("https://0x7f.1/", "https://127.0.0.1/"),  # a browser's IPv4: the guard judges the real address
    ("https://2130706433/", "https://127.0.0.1/"),
    ("https://[2001:DB8:0::1]:8443/x", "https://[2001:db8::1]:8443/x"),
])
def test_urls_are_normalised_as_a_browser_would_send_them(url, normalised):
    assert urls.normalise(url) == normalised
    assert urls.normalise(normalised) == normalised  # stable


@pytest.mark.parametrize("url, words", [
    ("ftp://hooks.example/", "https"),
    ("javascript:alert(1)", "https"),
    ("hooks.example/in", "https"),
    ("https://user:pw@hooks.example/", "credentials"),
    ("https://user@hooks.example/", "credentials"),
    ("https:///in", "no host"),
    ("https://hooks.example:99999/", "port"),
    ("https://hooks.example:x/", "port"),
    ("https://☃.example/", "internationalised"),
    ("https://a..b/", "label"),
    ("https://e x.example/", "host"),
    ("https://[fe80::1%25eth0]/", "zone"),
    ("https://[::g]/", "IPv6"),
    ("https://256.1.1.1/", "IPv4"),
    ("https://1.2.3.4.5/", "IPv4"),
    ("https://hooks.example/\ud800", "Unicode"),
])
def test_urls_that_cannot_be_normalised_are_refused_with_a_reason(url, words):
    with pytest.raises(urls.BadURL) as bad:
        urls.normalise(url)
    assert words in bad.value.reason


def _special_networks():
    """Every special-purpose network Python's ipaddress knows (its private tables follow the IANA
    registries), and CGNAT, which is_global leaves out of them."""
    v4, v6 = ipaddress._IPv4Constants, ipaddress._IPv6Constants
    return [*v4._private_networks, v4._linklocal_network, v4._loopback_network, v4._multicast_network,
            v4._reserved_network, ipaddress.ip_network("100.64.0.0/10"),
            *v6._private_networks, *v6._reserved_networks, v6._linklocal_network, v6._multicast_network,
            v6._sitelocal_network]


def test_every_special_purpose_network_python_knows_is_refused_at_both_ends():
    for net in _special_networks():
        for ip in (net[0], net[-1]):
            if ip in ssrf.GLOBAL_EXCEPTIONS:
                continue
            shown = f"[{ip}]" if ip.version == 6 else str(ip)
            with pytest.raises(ssrf.Refused):
                ssrf.check(f"https://{shown}/", frozenset(), resolver({}))


@pytest.mark.parametrize("address", [
    "192.0.0.8", "3fff::1", "5f00::1", "64:ff9b:1::1",   # not global per IANA, missed by Python 3.11
    "64:ff9b::a00:1", "64:ff9b::7f00:1",                   # NAT64 to a private / loopback IPv4
    "2002:c058:6301::1",                                   # 6to4 of the relay anycast 192.88.99.1
])
def test_other_non_global_and_embedded_addresses_are_refused(address):
    with pytest.raises(ssrf.Refused):
        ssrf.check("https://hooks.example/", frozenset(), resolver({"hooks.example": [address]}))


@pytest.mark.parametrize("address", ["93.184.216.34", "192.0.0.9", "64:ff9b::5db8:d822", "2606:2800:220:1::1"])
def test_public_addresses_pass(address):
    assert ssrf.check("https://hooks.example/", frozenset(), resolver({"hooks.example": [address]})).address == address


# --- registration: /v1/webhooks in-process ------------------------------------------------------

@pytest.fixture
def registry():
    from services.pipeline.web import create_service_app
    from services.webhooks.api import register_webhook_routes
    from tests.support.fakes import MemoryEndpointStore, memory_runtime

    key = base64.b64encode(os.urandom(32)).decode()
    rt = memory_runtime(webhook_secrets_key=key, webhook_allow_hosts=frozenset({"127.0.0.1"}))
    app, _ = create_service_app("ingest", runtime=rt)
    register_webhook_routes(app, rt, lambda: "client-a", endpoints=MemoryEndpointStore(SecretBox(key)))
    return app.test_client()


def test_registration_stores_the_url_as_a_browser_would_send_it(registry):
    made = registry.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/a b/é?q=ü"})
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["url"] == "http://127.0.0.1:9/a%20b/%C3%A9?q=%C3%BC"
    [listed] = registry.get("/v1/webhooks").get_json()["webhooks"]
    assert listed["url"] == "http://127.0.0.1:9/a%20b/%C3%A9?q=%C3%BC"


@pytest.mark.parametrize("url, words", [
    ("https://user:pw@93.184.216.34/", "credentials"),
    ("ftp://93.184.216.34/", "https"),
    ("https://☃.example/", "internationalised"),
    ("https://[fec0::1]/", "site-local"),
    ("https://192.88.99.1/", "6to4 relay"),
    ("https://0x7f.0.0.2/", "loopback"),
])
def test_registration_refuses_what_cannot_be_normalised_or_called_with_a_problem(registry, url, words):
    refused = registry.post("/v1/webhooks", json={"url": url})
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    assert words in refused.get_json()["detail"]
