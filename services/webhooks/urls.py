"""Webhook URLs as a browser would send them (the WHATWG URL standard), or a reason why not.

Registration stores the normalised form (the client sees it in the 201) and every delivery
normalises again (endpoints stored before this rule), so what reaches the HTTP client is plain
ASCII it can always send: an IDNA host (UTS #46, IDNA 2008), a percent-encoded path and query
(UTF-8), no fragment (browsers never send it), no default port. Like a browser: tab/CR/LF are
dropped, `\\` is `/` before the query, `.`/`..` segments are resolved, a host ending in a number
is an IPv4 address (`0x7f.1` is 127.0.0.1, so the SSRF guard judges what is really called).
Unlike a browser we refuse, rather than guess: userinfo (credentials in a URL leak into logs),
schemes other than http(s), IPv6 zone ids, hosts IDNA 2008 does not allow (symbols, emoji).
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote, urlsplit

import idna

SCHEMES = {"http": 80, "https": 443}
# WHATWG percent-encode sets (special schemes), beyond C0 controls, space and non-ASCII.
_PATH_SET = set('"#<>?`{}')
_QUERY_SET = set("\"#<>'")
_FORBIDDEN_HOST = set(" #%/:<>?@[\\]^|")
_ASCII_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


class BadURL(ValueError):
    """`reason` says, for the client, why the URL cannot be used."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def normalise(url: str) -> str:
    url = url.strip("".join(map(chr, range(0x21)))).translate({9: None, 10: None, 13: None})
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    url = url[:cut].replace("\\", "/") + url[cut:]
    try:
        parts = urlsplit(url)
    except ValueError:  # a bracketed host that is no IPv6 address
        raise BadURL("the URL's IPv6 address is not valid") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise BadURL(f"webhook URLs must use https (got {scheme + ':' if scheme else 'no scheme'})")
    if "@" in parts.netloc:
        raise BadURL("webhook URLs may not carry credentials (user:password@)")
    try:
        port = parts.port
    except ValueError:
        raise BadURL("the URL's port is not a number from 1 to 65535") from None
    host = _host(parts.netloc.rpartition(":")[0] if _has_port(parts.netloc) else parts.netloc)
    authority = host if port in (None, SCHEMES[scheme]) else f"{host}:{port}"
    query = f"?{_encode(parts.query, _QUERY_SET)}" if parts.query else ""
    return f"{scheme}://{authority}{_path(parts.path)}{query}"


def _has_port(netloc: str) -> bool:
    return ":" in netloc.rpartition("]")[2]


def _host(raw: str) -> str:
    if not raw:
        raise BadURL("the URL has no host")
    if raw.startswith("["):
        if not raw.endswith("]") or "%" in raw:
            raise BadURL("the URL's IPv6 address is not valid (zone ids are not allowed)")
        try:
            return f"[{ipaddress.IPv6Address(raw[1:-1]).compressed}]"
        except ValueError:
            raise BadURL(f"{raw} is not a valid IPv6 address") from None
    try:
        host = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadURL("the URL's host is not valid UTF-8 once percent-decoded") from None
    if any(c in _FORBIDDEN_HOST or ord(c) < 0x20 or ord(c) == 0x7F for c in host):
        raise BadURL(f"the URL's host {host!r} contains a character a host name cannot have")
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    except idna.IDNAError:
        raise _not_idna(host) from None
    trailing_dot = mapped.endswith(".")
    labels = mapped.removesuffix(".").split(".")
    ipv4 = _ipv4(labels)
    if ipv4 is not None:
        return ipv4
    ascii_labels = [_label(label, host) for label in labels]
    name = ".".join(ascii_labels) + ("." if trailing_dot else "")
    if len(name) > 253:
        raise BadURL("the URL's host name is longer than 253 characters")
    return name


def _label(label: str, host: str) -> str:
    if label.isascii() and not label.startswith("xn--"):
        if not _ASCII_LABEL.fullmatch(label):
            raise BadURL(f"the host {host!r} has an empty or invalid label {label!r}")
        return label
    try:
        if label.isascii():  # an A-label as written: valid only if it decodes
            idna.ulabel(label)
            return label
        return idna.alabel(label).decode()
    except (idna.IDNAError, UnicodeError):
        raise _not_idna(host) from None


def _not_idna(host: str) -> BadURL:
    return BadURL(f"the host {host!r} is not a valid internationalised domain name (IDNA 2008: letters, digits, hyphens)")


def _ipv4(labels: list[str]) -> str | None:
    """WHATWG's IPv4 parser: a host whose last label is a number is an address (decimal, 0x hex,
    0 octal; the last part fills the remaining bytes), or invalid; else None (a name)."""
    if not labels or not re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]*", labels[-1]):
        return None
    numbers = []
    for part in labels:
        try:
            if part[:2].lower() == "0x":
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part, 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            raise BadURL(f"the host {'.'.join(labels)!r} ends in a number but is not an IPv4 address") from None
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise BadURL(f"the host {'.'.join(labels)!r} ends in a number but is not an IPv4 address")
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return str(ipaddress.IPv4Address(value))


def _path(path: str) -> str:
    """Dot segments resolved (`%2e` counts as `.`), each segment percent-encoded."""
    out: list[str] = []
    segments = path.split("/")[1:] if path else [""]
    for i, seg in enumerate(segments):
        low, last = seg.lower(), i == len(segments) - 1
        if low in ("..", ".%2e", "%2e.", "%2e%2e"):
            if out:
                out.pop()
            if last:
                out.append("")
        elif low in (".", "%2e"):
            if last:
                out.append("")
        else:
            out.append(_encode(seg, _PATH_SET))
    return "/" + "/".join(out)


def _encode(text: str, unsafe: set[str]) -> str:
    """Percent-encode (UTF-8) what a browser would; an existing `%XX` stays as written."""
    try:
        return "".join(_percent(c) if (c in unsafe or not 0x20 < ord(c) < 0x7F) else c for c in text)
    except UnicodeEncodeError:
        raise BadURL("the URL is not valid Unicode (a lone surrogate)") from None


def _percent(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode())
