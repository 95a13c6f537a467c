"""The local cloud's stand-in for Identity-Aware Proxy in front of the operators' console.

In production IAP signs in an operator with Google and adds its signed assertion
(`x-goog-iap-jwt-assertion`, issuer https://cloud.google.com/iap) to every request it lets
through; the console verifies it (services/console/auth.py). Here this front does the same with
a key the local cloud makes at run time (git-ignored state folder, never committed): a sign-in
page asks for an email, remembers it in a cookie, and each proxied request carries an assertion
signed with that key for the console's audience. It serves the key's JWKS at /_iap/certs, which
is what the console's CONSOLE_CERTS_URL points at locally: the console's code is production's.

Why a front rather than a token the CLI prints: a browser cannot add a header to its own
requests, IAP is a front, and the console's pages, forms and player then work as they will behind
the real one. API callers send the cookie (`curl -b local_iap_operator=you@example.com ...`).

    python -m localcloud.iap_front --port P --upstream http://127.0.0.1:C --key-file KEY.pem --audience AUD
"""
from __future__ import annotations

import argparse
import base64
import html
import http.client
import json
import time
import urllib.parse
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

ISSUER = "https://cloud.google.com/iap"
KID = "local-iap"
COOKIE = "local_iap_operator"
HEALTH_PATH = "/_iap/healthz"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "x-goog-iap-jwt-assertion"}


def local_iap_key(state_dir: Path) -> Path:
    """The throwaway key this front signs operators' assertions with, made on first use."""
    path = state_dir / "iap-key.pem"
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
    return path


def jwks(pem: bytes) -> dict:
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)  # the key local_iap_key() made
    nums = key.public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {"keys": [{"kty": "RSA", "kid": KID, "alg": "RS256", "use": "sig", "n": b64(nums.n), "e": b64(nums.e)}]}


def assertion(pem: bytes, audience: str, email: str, lifetime: int = 600) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "email": email, "sub": f"local:{email}", "iat": now, "exp": now + lifetime}
    return jwt.encode(crypt.RSASigner.from_string(pem, key_id=KID), claims).decode()


SIGN_IN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in · local IAP</title><style>body{{font:15px system-ui,sans-serif;max-width:28rem;margin:10vh auto;padding:1rem}}
input,button{{font:inherit;padding:.4rem;width:100%;margin:.3rem 0}}</style></head><body>
<h1>Sign in to the console</h1><p>The local cloud's stand-in for Identity-Aware Proxy: your email becomes the operator
the console verifies and audits (signed with the local key; production signs in with Google).</p>
<form method="post" action="/_iap/sign-in"><input type="hidden" name="next" value="{next}">
<label>Email <input type="email" name="email" required autofocus value="operator@example.com"></label>
<button type="submit">Sign in</button></form></body></html>"""


def make_handler(upstream: str, pem: bytes, audience: str):
    target = urllib.parse.urlsplit(upstream)
    certs = json.dumps(jwks(pem)).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _operator(self) -> str | None:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            return urllib.parse.unquote(cookie[COOKIE].value) if COOKIE in cookie else None

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _route(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == HEALTH_PATH:
                return self._send(200, b"ok", "text/plain")
            if path == "/_iap/certs":
                return self._send(200, certs, "application/json", {"Cache-Control": "public, max-age=300"})
            if path == "/_iap/sign-in":
                if self.command == "POST":
                    form = urllib.parse.parse_qs(self._body().decode())
                    email = (form.get("email") or [""])[0].strip()
                    nxt = (form.get("next") or ["/"])[0]
                    if not email or "@" not in email:
                        return self._send(400, b"an email, please", "text/plain")
                    nxt = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"
                    return self._send(303, b"", "text/plain", {
                        "Location": nxt, "Set-Cookie": f"{COOKIE}={urllib.parse.quote(email)}; Path=/; HttpOnly; SameSite=Lax"})
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                return self._send(200, SIGN_IN.format(next=html.escape((query.get("next") or ["/"])[0])).encode(),
                                  "text/html; charset=utf-8")
            if path == "/_iap/sign-out":
                gone = {"Location": "/_iap/sign-in", "Set-Cookie": f"{COOKIE}=; Path=/; Max-Age=0"}
                return self._send(303, b"", "text/plain", gone)
            operator = self._operator()
            if operator is None:  # IAP sends a browser to sign in first
                return self._send(302, b"", "text/plain",
                                  {"Location": "/_iap/sign-in?" + urllib.parse.urlencode({"next": self.path})})
            self._proxy(operator)

        def _proxy(self, email: str) -> None:
            body = self._body() if self.command == "POST" else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = self.headers.get("Host") or ""
            headers["X-Goog-IAP-JWT-Assertion"] = assertion(pem, audience, email)
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=120)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            passed = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length", "content-type"}}
            self._send(resp.status, data, resp.getheader("Content-Type", "application/octet-stream"), passed)

        do_GET = do_POST = do_HEAD = _route

    return Handler


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--key-file", type=Path, required=True)
    p.add_argument("--audience", required=True)
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(a.upstream, a.key_file.read_bytes(), a.audience))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
