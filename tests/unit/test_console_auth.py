"""The console admits an operator only on a verified IAP token: signature (IAP signs ES256),
audience and issuer, checked as push tokens are; its keys come from a URL (a setting)."""
from __future__ import annotations

import base64
import time
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import crypt, jwt

from services.common.errors import HTTPProblem
from services.console.auth import IAP_HEADER, OperatorVerifier, check_console_settings
from services.pipeline.auth import ConfigurationError
from tests.support.fakes import memory_runtime
from tests.support.tokens import jwk, keys_server, new_key, token

AUD = "/projects/123/locations/europe-west1/services/console"
IAP = "https://cloud.google.com/iap"


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


@contextmanager
def serve(keys: list[dict]):
    with keys_server(keys) as (url, _):
        yield url


def _verifier(url: str):
    rt = memory_runtime(console_audience=AUD, console_certs_url=url, console_issuers=(IAP,))
    return OperatorVerifier(rt.settings)


def test_an_es256_iap_token_names_its_operator():
    """IAP signs with ES256 keys published as a JWKS of EC keys."""
    key = ec.generate_private_key(ec.SECP256R1())
    nums = key.public_key().public_numbers()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    now = int(time.time())
    signed = jwt.encode(crypt.ES256Signer.from_string(pem, key_id="iap1"),
                        {"iss": IAP, "aud": AUD, "email": "ops@example.com", "sub": "accounts.google.com:1", "iat": now,
                         "exp": now + 600}).decode()
    with serve([{"kty": "EC", "crv": "P-256", "kid": "iap1", "alg": "ES256", "x": _b64(nums.x), "y": _b64(nums.y)}]) as url:
        assert _verifier(url).operator({IAP_HEADER: signed}) == "ops@example.com"


@pytest.mark.parametrize("case", ["none", "audience", "issuer", "key", "no-email"])
def test_a_token_that_is_not_good_is_refused(case):
    key, other = new_key(), new_key()
    claims = {"iss": IAP, "aud": AUD, "email": "ops@example.com"}
    if case == "audience":
        claims["aud"] = "/projects/123/locations/europe-west1/services/other"
    if case == "issuer":
        claims["iss"] = "https://accounts.google.com"
    if case == "no-email":
        claims["email"] = ""
    signed = token(other if case == "key" else key, **claims)
    with serve([jwk(key)]) as url:
        with pytest.raises(HTTPProblem) as err:
            _verifier(url).operator({} if case == "none" else {IAP_HEADER: signed})
    assert err.value.status in (401, 403)


def test_the_console_refuses_to_start_without_an_audience():
    with pytest.raises(ConfigurationError, match="CONSOLE_AUDIENCE"):
        check_console_settings(memory_runtime(console_audience="").settings)


def _app(url: str):
    from services.console.app import create_app

    rt = memory_runtime(console_audience=AUD, console_certs_url=url, console_issuers=(IAP,))
    return create_app(runtime=rt, audit=object(), dead_letters=object()).test_client()  # type: ignore[arg-type]


def test_every_page_and_action_wants_an_operator_but_health_and_static_files_do_not():
    key = new_key()
    with serve([jwk(key)]) as url:
        client = _app(url)
        for method, path in (("GET", "/jobs"), ("GET", "/api/health"), ("POST", "/api/dead-letters/purge"),
                             ("POST", "/api/jobs/x/redrive")):
            assert client.open(path, method=method).status_code == 401, path
        assert client.get("/healthz").status_code == 200
        assert client.get("/static/console.css").status_code == 200
        assert client.get("/static/vendor/hls.min.js").status_code == 200


def test_an_action_posted_from_another_site_is_refused():
    """IAP's cookie goes with any form a page on another site submits: the Origin tells."""
    key = new_key()
    signed = token(key, iss=IAP, aud=AUD, email="ops@example.com")
    with serve([jwk(key)]) as url:
        client = _app(url)
        resp = client.post("/api/jobs/x/redrive", headers={IAP_HEADER: signed, "Origin": "https://evil.example"})
    assert resp.status_code == 403 and "console's own pages" in resp.get_json()["detail"]
