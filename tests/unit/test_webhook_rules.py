"""Webhook rules in-process: Standard Webhooks signatures (checked with the independent
`standardwebhooks` package), secrets sealed at rest, the SSRF guard with a test resolver."""
from __future__ import annotations

import base64
import os
import time

import pytest
from cryptography.exceptions import InvalidTag
from standardwebhooks import Webhook, WebhookVerificationError

from services.webhooks import signing, ssrf
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
