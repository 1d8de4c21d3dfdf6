"""Credentials, and the two providers that need no I/O: the settings and the environment.

A ``Credentials`` value never shows its secret or token in a repr. These live apart from
``providers`` (which imports http.client, subprocess and friends) so that a worker with
static keys imports nothing more on its way to the first result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["Credentials", "EnvProvider", "Provider", "StaticProvider"]


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
        return f"Credentials(access_key=***, secret_key=***{token}{expiry}, source={self.source!r})"

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
        if not access:  # a secret alone is passed over, as botocore's EnvProvider does
            return None
        if not secret:  # botocore raises PartialCredentialsError here: never fall through to IMDS
            raise ConfigError(
                "AWS_SECRET_ACCESS_KEY",
                "not set, while AWS_ACCESS_KEY_ID is; export AWS_SECRET_ACCESS_KEY too, "
                "or unset AWS_ACCESS_KEY_ID to use another source",
            )
        for name, value in (("AWS_ACCESS_KEY_ID", access), ("AWS_SECRET_ACCESS_KEY", secret)):
            if value != value.strip():  # pasted with a space or a newline: the store would say "wrong secret"
                raise ConfigError(name, f"has leading or trailing whitespace; remove it from {name}")
        token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
        return Credentials(access, secret, token, source=self.name)

    def __repr__(self) -> str:
        return "EnvProvider()"
