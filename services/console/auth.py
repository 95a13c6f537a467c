"""Operators are Google principals and the console sits behind IAP, which signs every request it
lets through (`x-goog-iap-jwt-assertion`, ES256). The app checks that token itself (signature,
audience, issuer: services/pipeline/auth.py, as push tokens), so a misconfigured ingress never
turns the console into an open door; the verified email is the operator every action is audited
under. The keys' URL, the audience and the issuers are settings: the local cloud points them at a
key of its own (localcloud/iap_front.py plays IAP), the code is the same."""
from __future__ import annotations

from typing import Protocol

from flask import current_app, request

from ..common.config import Settings
from ..common.errors import HTTPProblem
from ..pipeline.auth import ConfigurationError, TokenVerifier, unauthorized

IAP_HEADER = "X-Goog-IAP-JWT-Assertion"


class Headers(Protocol):
    def get(self, key: str) -> str | None: ...


def check_console_settings(settings: Settings) -> None:
    if not settings.console_audience:
        raise ConfigurationError("CONSOLE_AUDIENCE is empty, so operators' tokens could not be verified: set it to the "
                                 "audience IAP signs for this service (the local cloud sets its own)")


class OperatorVerifier:
    def __init__(self, settings: Settings):
        check_console_settings(settings)
        self.tokens = TokenVerifier(settings.console_audience, settings.console_issuers, settings.console_certs_url,
                                    settings.certs_refetch_min_seconds)

    def operator(self, headers: Headers) -> str:
        """The verified operator's email; 401 without a good token, 403 when it names nobody."""
        token = headers.get(IAP_HEADER)
        if not token:
            raise unauthorized("no IAP token: the console is reached through Identity-Aware Proxy", "invalid_request")
        email = self.tokens.claims(token).get("email")
        if not email:
            raise HTTPProblem(403, "Forbidden", "the token names no operator")
        return str(email)


def current_operator() -> str:
    """The operator of the request being served (verified before any page or action runs)."""
    verifier: OperatorVerifier = current_app.extensions["console.verifier"]
    return verifier.operator(request.headers)
