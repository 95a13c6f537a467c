"""The local storage front's check of V4 signed URLs, on URLs made by google-cloud-storage itself."""
from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2 import service_account

from localcloud.stack import local_signing_key
from localcloud.storage_front import Refused, Verifier, public_keys

ENDPOINT = "http://127.0.0.1:4444"


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    return local_signing_key(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="module")
def verifier(key_file):
    return Verifier(public_keys([key_file]))


def signed(key_file, name="renditions/job1/hls/720p/0000-00.ts", method="GET", seconds=600, endpoint=ENDPOINT) -> str:
    creds = service_account.Credentials.from_service_account_file(str(key_file))
    client = storage.Client(project="p", credentials=AnonymousCredentials())
    return client.bucket("mediarelay-renditions").blob(name).generate_signed_url(
        version="v4", method=method, expiration=dt.timedelta(seconds=seconds), credentials=creds,
        api_access_endpoint=endpoint)


def check(verifier, url: str, method="GET", now=None, headers=None):
    parts = urllib.parse.urlsplit(url)
    verifier.check(method, parts.path, parts.query, headers or {"host": parts.netloc}, now or dt.datetime.now(dt.UTC))


def refused(verifier, url, **kw) -> Refused:
    with pytest.raises(Refused) as caught:
        check(verifier, url, **kw)
    return caught.value


def test_a_url_signed_with_the_local_key_passes(verifier, key_file):
    check(verifier, signed(key_file))
    check(verifier, signed(key_file, name="renditions/job1/a name with spaces & ünïcode.jpg"))
    check(verifier, signed(key_file, method="HEAD"), method="HEAD")


def test_an_unsigned_url_is_an_anonymous_read_and_refused(verifier):
    exc = refused(verifier, f"{ENDPOINT}/mediarelay-renditions/renditions/job1/hls/720p/0000-00.ts")
    assert (exc.status, exc.code) == (403, "AccessDenied")
    assert b"<Code>AccessDenied</Code>" in exc.xml()


def test_tampered_urls_are_refused(verifier, key_file):
    url = signed(key_file)
    other_object = url.replace("0000-00.ts", "0001-00.ts")
    longer = url.replace("X-Goog-Expires=600", "X-Goog-Expires=6000")
    sig = url.rsplit("X-Goog-Signature=", 1)[1]
    flipped = url.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
    extra = url + "&response-content-type=text%2Fhtml"
    for bad in (other_object, longer, flipped, extra):
        exc = refused(verifier, bad)
        assert (exc.status, exc.code) == (403, "SignatureDoesNotMatch"), bad
    # Another host than the one signed, another method than the one signed.
    parts = urllib.parse.urlsplit(url)
    assert refused(verifier, url, headers={"host": "127.0.0.1:1"}).code == "SignatureDoesNotMatch"
    assert refused(verifier, url, method="DELETE").code == "SignatureDoesNotMatch"
    assert parts.netloc == "127.0.0.1:4444"


def test_a_key_the_front_does_not_know_is_refused(verifier, tmp_path):
    exc = refused(verifier, signed(local_signing_key(tmp_path)))
    assert (exc.status, exc.code) == (403, "SignatureDoesNotMatch")


def test_an_expired_url_is_refused_as_gcs_does(verifier, key_file):
    url = signed(key_file, seconds=60)
    check(verifier, url, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=50))
    exc = refused(verifier, url, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=70))
    assert (exc.status, exc.code) == (400, "ExpiredToken")
