"""Credentials and where they come from.

A ``Credentials`` value never shows its secret or token in a repr. Providers are tried in the
AWS SDK order; the first that finds something wins. ``CredentialSource`` is what the client
holds: it hands out the current credentials cheaply on every request.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import CredentialsError

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "CredentialSource",
    "Credentials",
    "EnvProvider",
    "Provider",
    "StaticProvider",
    "chain_for",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key, its secret, an optional session token and expiry (UNIX time)."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    expiry: float | None = None
    source: str = "static"

    def __repr__(self) -> str:
        token = ", token=***" if self.token else ""
        expiry = f", expiry={self.expiry:.0f}" if self.expiry is not None else ""
        return f"Credentials(access_key={self.access_key!r}, secret_key=***{token}{expiry}, source={self.source!r})"

    __str__ = __repr__


Provider = Callable[[], "Credentials | None"]


class StaticProvider:
    """Credentials given in the settings (URL userinfo, ``s3_access_key_id``, ...)."""

    name = "settings"

    def __init__(self, access_key: str | None, secret_key: str | None, token: str | None = None) -> None:
        self._creds = (
            Credentials(access_key, secret_key, token or None, source=self.name) if access_key and secret_key else None
        )

    def __call__(self) -> Credentials | None:
        return self._creds

    def __repr__(self) -> str:
        return f"StaticProvider(configured={self._creds is not None})"


class EnvProvider:
    """``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``."""

    name = "environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def __call__(self) -> Credentials | None:
        env = self._environ
        access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret:
            return None
        token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
        return Credentials(access, secret, token, source=self.name)

    def __repr__(self) -> str:
        return "EnvProvider()"


_NONE_FOUND = (
    "no S3 credentials found: put them in result_backend (s3result://KEY:SECRET@bucket), "
    "set s3_access_key_id and s3_secret_access_key, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)


class CredentialSource:
    """Runs the provider chain once, then hands out the same credentials until they expire."""

    def __init__(self, providers: Sequence[Provider]) -> None:
        self._providers = tuple(providers)
        self._lock = threading.Lock()
        self._current: Credentials | None = None

    def get(self) -> Credentials:
        """The credentials to sign with now; resolves the chain on first use."""
        creds = self._current
        if creds is not None:
            return creds
        with self._lock:
            if self._current is None:
                self._current = self._resolve()
            return self._current

    def _resolve(self) -> Credentials:
        for provider in self._providers:
            creds = provider()
            if creds is not None:
                logger.debug("s3result: credentials from %s (access key %s)", creds.source, creds.access_key)
                return creds
        raise CredentialsError(_NONE_FOUND)

    def __repr__(self) -> str:
        return f"CredentialSource(providers={len(self._providers)})"


def chain_for(settings: Settings) -> CredentialSource:
    """The provider chain for these settings: explicit settings first, then the environment."""
    return CredentialSource(
        [StaticProvider(settings.access_key, settings.secret_key, settings.session_token), EnvProvider()]
    )
