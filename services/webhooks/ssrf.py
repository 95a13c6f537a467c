"""Where a webhook may go: the SSRF guard.

The URL's host is resolved once and every address it gives must be public: loopback,
private, link-local (the metadata server 169.254.169.254), CGNAT (100.64/10), multicast,
unspecified, reserved and their IPv6 forms (IPv4-mapped, 6to4, Teredo, ULA) are refused.
The request then goes to the address that was checked, never to a second lookup (no DNS
rebinding), and redirects are never followed. Only https, except to hosts on the
WEBHOOK_ALLOW_HOSTS allow-list (tests: 127.0.0.1), which also skip the address check.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

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


def _not_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if embedded is not None:
                return _not_public(embedded)
    for name in ("is_loopback", "is_link_local", "is_multicast", "is_unspecified", "is_reserved", "is_private"):
        if getattr(ip, name):
            return name.removeprefix("is_").replace("_", "-")
    if not ip.is_global:  # CGNAT 100.64/10 and other special-purpose ranges
        return "not globally routable"
    return None


def check(url: str, allow: frozenset[str], resolve: Resolver = system_resolver) -> Target:
    """The Target to connect to for `url`, or Refused."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise Refused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the URL's port is not a number from 1 to 65535") from None
    allowed = host in allow
    if parts.scheme != "https" and not (parts.scheme == "http" and allowed):
        raise Refused("webhook URLs must use https")
    if parts.username or parts.password:
        raise Refused("webhook URLs may not carry credentials")
    addresses = [host] if _is_ip(host) else resolve(host, port)
    if not addresses:
        raise Refused(f"{host} resolves to no address")
    for address in addresses:
        kind = None if (allowed or address in allow) else _not_public(ipaddress.ip_address(address.split("%")[0]))
        if kind:
            where = host if address == host else f"{host} resolves to {address}"
            raise Refused(f"{where}: {kind} address; webhooks go to public addresses only")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, addresses[0])


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


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST `body` to the checked address (TLS verified against the URL's host name). Raises
    OSError (including timeouts) when no answer comes; a redirect is an answer like any other."""
    started = time.monotonic()
    sock = socket.create_connection((target.address, target.port), timeout=timeout)
    try:
        conn: http.client.HTTPConnection
        if target.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
            conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
        conn.sock = sock  # the connection to the checked address: no second lookup
        conn.request("POST", target.path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": "mediarelay-webhooks/1", **headers})
        resp = conn.getresponse()
        resp.read(MAX_RESPONSE_BYTES)
        return Answer(resp.status, round((time.monotonic() - started) * 1000))
    finally:
        sock.close()
