"""The local cloud's storage front: GCS's access check for reads, in front of fake-gcs-server.

fake-gcs-server serves any object to anyone, so a signed URL that production would refuse (an
unsigned child of a signed playlist, a tampered or expired signature) worked here. This front is
the address clients are given for signed reads (STORAGE_READ_ENDPOINT): it serves an object
(GET/HEAD, with Range) only for a valid, unexpired V4 signature (GOOG4-RSA-SHA256) made with the
local service-account key, verified with its public key as Google's "V4 signing process" page
describes it (canonical request -> string to sign -> RSA-SHA256), and answers as GCS does
otherwise: XML errors, 403 AccessDenied without a signature, 403 SignatureDoesNotMatch for a bad
one, 400 ExpiredToken after expiry. Uploads (signed PUT, resumable sessions) and the services' own
client traffic go to fake-gcs-server directly.

CORS: answered as the renditions bucket's CORS rule (terraform/storage.tf: GET/HEAD, the Range
header) would, for the origins of CORS_ALLOWED_ORIGINS (`--cors-origins`; the local cloud: `*`).

    python -m localcloud.storage_front --port P --upstream http://127.0.0.1:G --key-file KEY.json
"""
from __future__ import annotations

import argparse
import binascii
import datetime as dt
import hashlib
import http.client
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from services.common.cors import allowed_origin

ALGORITHM = "GOOG4-RSA-SHA256"
MAX_EXPIRES = 7 * 24 * 3600  # GCS's longest V4 lifetime
CLOCK_SKEW = dt.timedelta(minutes=5)  # X-Goog-Date may be this far in the future
PASSED_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified",
                  "Cache-Control", "Content-Encoding", "Content-Disposition")
HEALTH_PATH = "/_front/healthz"


class Refused(Exception):
    def __init__(self, status: int, code: str, details: str):
        super().__init__(details)
        self.status, self.code, self.details = status, code, details

    def xml(self) -> bytes:
        message = {"AccessDenied": "Access denied.", "ExpiredToken": "Invalid argument."}.get(
            self.code, "The request signature we calculated does not match the signature you provided.")
        return (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{self.code}</Code><Message>{message}</Message>"
                f"<Details>{escape(self.details)}</Details></Error>").encode()


def public_keys(key_files: list[Path]) -> dict[str, rsa.RSAPublicKey]:
    """client_email -> public key, from service-account key files (the signer's account is in the credential)."""
    out = {}
    for path in key_files:
        info = json.loads(path.read_text())
        private = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        out[info["client_email"]] = private.public_key()
    return out


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="~")  # RFC 3986: everything but unreserved characters


def canonical_request(method: str, raw_path: str, params: list[tuple[str, str]], headers: Mapping[str, str],
                      signed_headers: str) -> str:
    """Google's canonical request: verb, the path as sent (already percent-encoded), the query
    (every parameter but the signature, encoded, sorted), the signed headers (lower-case names,
    trimmed values, each line ended), their names, and the payload marker of signed URLs."""
    query = "&".join(sorted(f"{_quote(k)}={_quote(v)}" for k, v in params if k != "X-Goog-Signature"))
    lines = []
    for name in signed_headers.split(";"):
        value = headers.get(name)
        if value is None:
            raise Refused(403, "SignatureDoesNotMatch", f"the signed header {name!r} is missing from the request")
        lines.append(f"{name}:{' '.join(value.split())}")
    payload = headers.get("x-goog-content-sha256", "UNSIGNED-PAYLOAD")
    return "\n".join([method, raw_path, query, "\n".join(lines) + "\n", signed_headers, payload])


@dataclass(frozen=True)
class Verifier:
    keys: Mapping[str, rsa.RSAPublicKey]

    def check(self, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], now: dt.datetime) -> None:
        """Raise Refused unless the request carries a valid, unexpired V4 signature of a known key.
        `headers` is keyed by lower-case name."""
        params = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
        q = dict(params)
        if "X-Goog-Signature" not in q:
            raise Refused(403, "AccessDenied", "Anonymous caller does not have storage.objects.get access to the "
                                               "Google Cloud Storage object.")
        if q.get("X-Goog-Algorithm") != ALGORITHM:
            raise Refused(400, "InvalidArgument", f"X-Goog-Algorithm must be {ALGORITHM}")
        try:
            email, datestamp, location, service, request_type = q["X-Goog-Credential"].split("/")
            date = dt.datetime.strptime(q["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            expires = int(q["X-Goog-Expires"])
            signature = binascii.unhexlify(q["X-Goog-Signature"])
            signed_headers = q["X-Goog-SignedHeaders"]
        except (KeyError, ValueError, binascii.Error) as exc:
            raise Refused(400, "InvalidArgument", f"malformed signed URL ({type(exc).__name__})") from None
        if not 1 <= expires <= MAX_EXPIRES:
            raise Refused(400, "InvalidArgument", f"X-Goog-Expires must be 1 to {MAX_EXPIRES}")
        if now > date + dt.timedelta(seconds=expires):
            raise Refused(400, "ExpiredToken", f"The provided token has expired. Request signature expired at: "
                                               f"{(date + dt.timedelta(seconds=expires)).isoformat()}")
        if date > now + CLOCK_SKEW:
            raise Refused(400, "InvalidArgument", "X-Goog-Date is in the future")
        key = self.keys.get(email)
        if key is None or datestamp != q["X-Goog-Date"][:8] or (service, request_type) != ("storage", "goog4_request"):
            raise Refused(403, "SignatureDoesNotMatch", "unknown signer or credential scope")
        scope = f"{datestamp}/{location}/{service}/{request_type}"
        request = canonical_request(method, raw_path, params, headers, signed_headers)
        to_sign = "\n".join([ALGORITHM, q["X-Goog-Date"], scope, hashlib.sha256(request.encode()).hexdigest()])
        try:
            key.verify(signature, to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise Refused(403, "SignatureDoesNotMatch", f"canonical request: {request!r}") from None


def make_handler(verifier: Verifier, upstream: str, cors_origins: tuple[str, ...] = ("*",)) -> type[BaseHTTPRequestHandler]:
    target = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def _cors(self) -> bool:
            origin = allowed_origin(cors_origins, self.headers.get("Origin"))
            if origin is None:
                return False
            self.send_header("Access-Control-Allow-Origin", origin)
            if origin != "*":
                self.send_header("Vary", "Origin")
            self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Range, Content-Type")
            return True

        def do_OPTIONS(self):
            self.send_response(200)
            if self._cors():  # the renditions bucket's rule (terraform/storage.tf): GET/HEAD with Range
                self.send_header("Access-Control-Allow-Methods", "GET, HEAD")
                self.send_header("Access-Control-Allow-Headers", "Range")
                self.send_header("Access-Control-Max-Age", "3600")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path, _, query = self.path.partition("?")
            if path == HEALTH_PATH:
                return self._answer(200, b"ok", "text/plain", body)
            try:
                verifier.check(self.command, path, query, {k.lower(): v for k, v in self.headers.items()},
                               dt.datetime.now(dt.UTC))
            except Refused as exc:
                return self._answer(exc.status, exc.xml(), "application/xml; charset=UTF-8", body)
            generation = dict(urllib.parse.parse_qsl(query)).get("generation")
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
            try:
                headers = {"Range": self.headers["Range"]} if self.headers.get("Range") else {}
                conn.request(self.command, path + (f"?generation={generation}" if generation else ""), headers=headers)
                resp = conn.getresponse()
                self.send_response(resp.status)
                for name in PASSED_HEADERS:
                    value = resp.getheader(name)
                    if value is not None:
                        self.send_header(name, value)
                self._cors()
                self.end_headers()
                if body:
                    while chunk := resp.read(1 << 16):
                        self.wfile.write(chunk)
            finally:
                conn.close()

        def _answer(self, status: int, data: bytes, content_type: str, body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Date", formatdate(usegmt=True))
            self._cors()
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


def serve(port: int, upstream: str, key_files: list[Path], host: str = "127.0.0.1",
          cors_origins: tuple[str, ...] = ("*",)) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(Verifier(public_keys(key_files)), upstream, cors_origins))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="fake-gcs-server's URL")
    ap.add_argument("--key-file", type=Path, action="append", required=True, help="a key whose signatures pass")
    ap.add_argument("--cors-origins", default="*", help="CORS_ALLOWED_ORIGINS: comma-separated origins, `*` = any")
    args = ap.parse_args(argv)
    origins = tuple(o.strip() for o in args.cors_origins.split(",") if o.strip())
    serve(args.port, args.upstream, args.key_file, cors_origins=origins).serve_forever()


if __name__ == "__main__":
    main()
