"""Google-style ID tokens for tests: an RSA key of our own, its JWKS served on 127.0.0.1 as
Google serves its certs (counting fetches), and tokens signed with it."""
from __future__ import annotations

import base64
import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

AUDIENCE = "mediarelay-push-test"
PUSH_SA = "push@mediarelay-test.iam.gserviceaccount.com"
SCHEDULER_SA = "scheduler@mediarelay-test.iam.gserviceaccount.com"
KID = "test-key-1"


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key, kid: str = KID) -> dict:
    nums = key.public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(nums.n), "e": b64(nums.e)}


def token(key, kid=KID, **overrides) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": PUSH_SA, "email_verified": True,
              "sub": "1234567890", "iat": now, "exp": now + 600}
    claims.update(overrides)
    return jwt.encode(crypt.RSASigner.from_string(pem, key_id=kid), claims).decode()


@contextmanager
def jwks_server(key, kid: str = KID):
    """Yields (certs URL, fetch counter: a list whose length is the number of fetches)."""
    with keys_server([jwk(key, kid)]) as served:
        yield served


@contextmanager
def keys_server(keys: list[dict]):
    """Serves {"keys": keys} on 127.0.0.1 as Google serves its certs; yields (URL, fetch times)."""
    body = json.dumps({"keys": keys}).encode()
    fetches: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            fetches.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=300")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/certs", fetches
    finally:
        server.shutdown()
