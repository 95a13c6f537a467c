"""Where a webhook may go (the SSRF guard), and the one bounded POST that goes there.

The URL is normalised first (urls.py: what a browser would send, plain ASCII). Its host is
resolved once and every address it gives must be public: loopback, private, link-local (the
metadata server 169.254.169.254), CGNAT (100.64/10), multicast, unspecified, reserved,
documentation, benchmarking, deprecated (site-local fec0::/10, the 6to4 relay anycast
192.88.99.0/24) and their IPv6 forms (IPv4-mapped, 6to4, Teredo, NAT64: judged by the IPv4
address inside) are refused. The request then goes to the address that was checked, never to a
second lookup (no DNS rebinding), and redirects are never followed. Only https, except to hosts
on the WEBHOOK_ALLOW_HOSTS allow-list (tests: 127.0.0.1), which also skip the address check.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import urls

Resolver = Callable[[str, int], list[str]]
MAX_RESPONSE_BYTES = 64 * 1024


class Refused(Exception):
    """The URL may not be called; `reason` says why, for the endpoint's record."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"cannot resolve {host}: {exc.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str
    url: str  # normalised: what is stored at registration


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# What the IANA special-purpose registries (RFC 6890 and its updates) say is not globally
# reachable, beyond what Python 3.11's ipaddress knows (is_private, is_reserved, ... cover the
# rest; tests/unit/test_webhook_rules.py walks ipaddress's own tables against this guard).
NOT_GLOBAL: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignment"),  # RFC 6890; .9 and .10 excepted below
    (ipaddress.ip_network("192.88.99.0/24"), "deprecated 6to4 relay anycast"),  # RFC 7526
    (ipaddress.ip_network("fec0::/10"), "deprecated site-local"),  # RFC 3879: the old "private" IPv6
    (ipaddress.ip_network("3fff::/20"), "documentation"),  # RFC 9637
    (ipaddress.ip_network("5f00::/16"), "segment routing (SRv6 SIDs)"),  # RFC 9602
    (ipaddress.ip_network("64:ff9b:1::/48"), "local-use NAT64"),  # RFC 8215
)
GLOBAL_EXCEPTIONS = frozenset(ipaddress.ip_address(a) for a in ("192.0.0.9", "192.0.0.10"))  # PCP, TURN anycast
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the low 32 bits is what is reached


def _not_public(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        nat64 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None
        for embedded in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None, nat64):
            if embedded is not None:
                return _not_public(embedded)
    if ip in GLOBAL_EXCEPTIONS:
        return None
    for network, kind in NOT_GLOBAL:
        if ip in network:
            return kind
    for name in ("is_loopback", "is_link_local", "is_site_local", "is_multicast", "is_unspecified", "is_reserved",
                 "is_private"):
        if getattr(ip, name, False):
            return name.removeprefix("is_").replace("_", "-")
    if not ip.is_global:  # CGNAT 100.64/10 and other special-purpose ranges
        return "not globally routable"
    return None


def check(url: str, allow: frozenset[str], resolve: Resolver = system_resolver) -> Target:
    """The Target to connect to for `url` (normalised first), or Refused."""
    try:
        url = urls.normalise(url)
    except urls.BadURL as exc:
        raise Refused(exc.reason) from None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or urls.SCHEMES[parts.scheme]
    allowed = host in allow
    if parts.scheme != "https" and not allowed:
        raise Refused("webhook URLs must use https")
    addresses = [host] if _is_ip(host) else resolve(host, port)
    if not addresses:
        raise Refused(f"{host} resolves to no address")
    for address in addresses:
        kind = None if (allowed or address in allow) else _not_public(ipaddress.ip_address(address.split("%")[0]))
        if kind:
            where = host if address == host else f"{host} resolves to {address}"
            raise Refused(f"{where}: {kind} address; webhooks go to public addresses only")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, addresses[0], url)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class Answer:
    status: int
    elapsed_ms: int


class Failed(Exception):
    """No answer: `reason` says why, for a person (the endpoint's health, the job's record)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Deadline:
    """Ends an attempt at its deadline, whatever the receiver does: a timer shuts the socket down
    (both ways), so a blocked connect-after, TLS handshake, send or read returns at once. A socket
    timeout alone is per operation: a receiver sending one byte every few seconds never trips it.
    The lock keeps the timer from touching a socket the attempt has closed (its fd could be reused)."""

    def __init__(self, sock: socket.socket, seconds: float):
        self.sock = sock
        self.expired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(max(seconds, 0.0), self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        with self._lock:
            if not self._done:
                self.expired = True
                self._shutdown()

    def _shutdown(self) -> None:
        try:  # the base method: on an SSLSocket it must not drop the TLS object under a reader
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def watch(self, sock: socket.socket) -> None:
        """The socket to cut from now on (TLS wraps the first one: same fd, a new object)."""
        with self._lock:
            self.sock = sock
            if self.expired:
                self._shutdown()

    def close(self) -> None:
        with self._lock:
            self._done = True
            self._timer.cancel()
            self.sock.close()


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST `body` to the checked address (TLS verified against the URL's host name), connect to
    answer within `timeout` seconds (WEBHOOK_TIMEOUT_SECONDS) in all. Raises Failed, with a reason
    for a person, whatever goes wrong; a redirect is an answer like any other."""
    started = time.monotonic()
    try:
        raw = socket.create_connection((target.address, target.port), timeout=timeout)
    except OSError as exc:
        raise Failed(_why(exc, timeout, expired=isinstance(exc, TimeoutError))) from None
    deadline = _Deadline(raw, timeout - (time.monotonic() - started))
    status: int | None = None
    try:
        conn: http.client.HTTPConnection
        if target.scheme == "https":
            tls = ssl.create_default_context().wrap_socket(raw, server_hostname=target.host, do_handshake_on_connect=False)
            deadline.watch(tls)  # `raw` is detached from its fd now: the timer must cut this one
            tls.do_handshake()
            conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout)
            conn.sock = tls
        else:
            conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
            conn.sock = raw  # the connection to the checked address: no second lookup
        conn.request("POST", target.path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": "mediarelay-webhooks/1", **headers})
        resp = conn.getresponse()
        if deadline.expired:  # http.client takes the cut (EOF) for the end of the headers: no answer
            raise TimeoutError()
        status = resp.status
        resp.read(MAX_RESPONSE_BYTES)  # drained for the receiver's sake, within the same deadline
    except Exception as exc:  # noqa: BLE001 - whatever the client raises is the receiver's failure, told in words
        if status is None:  # once the status arrived it is the answer; a slow or broken body changes nothing
            raise Failed(_why(exc, timeout, expired=deadline.expired)) from None
    finally:
        deadline.close()
    return Answer(status, round((time.monotonic() - started) * 1000))


def _why(exc: BaseException, timeout: float, expired: bool) -> str:
    """What went wrong, in words: never a repr or an OpenSSL code."""
    if expired or isinstance(exc, TimeoutError):
        return f"no complete answer within WEBHOOK_TIMEOUT_SECONDS={timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the TLS certificate was not accepted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return "the TLS handshake failed"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return "the receiver closed the connection without answering"
    if isinstance(exc, http.client.HTTPException):
        return "the receiver's answer is not valid HTTP"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or 'the connection failed'}"
    return "the request could not be sent (the URL or a header was refused by the HTTP client)"
