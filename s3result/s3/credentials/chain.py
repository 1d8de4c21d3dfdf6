"""The provider chain: where credentials come from, and when they are refreshed.

Providers are tried in the
AWS SDK order; the first that finds something wins. ``CredentialSource`` is what the client
holds: it hands out the current credentials cheaply on every request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import sigv4
from ..errors import CredentialsError
from ..process import renew_locks_after_fork
from .base import Credentials, Provider

if TYPE_CHECKING:
    pass

__all__ = [
    "ADVISORY_REFRESH",
    "CredentialSource",
    "MANDATORY_REFRESH",
]

logger = logging.getLogger(__name__)


_NONE_FOUND = (
    "no S3 credentials found (tried: {tried}): put them in result_backend (s3result://KEY:SECRET@bucket), "
    "set s3_access_key_id and s3_secret_access_key, export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "or run with an IAM role"
)

#: Refresh starts this long before expiry, in one thread, while the others go on (botocore: 15 min).
ADVISORY_REFRESH = 15 * 60.0
#: From this long before expiry every caller waits for fresh credentials (botocore: 10 min).
MANDATORY_REFRESH = 10 * 60.0


class CredentialSource:
    """Runs the provider chain once, then hands out credentials, refreshing them before expiry.

    Advisory window: one thread refreshes while the others keep signing with the current
    credentials, and a failure is only logged. Mandatory window: callers wait (one refresh,
    no thundering herd) and a failure raises one ``CredentialsError``.
    """

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        clock: Callable[[], float] = time.time,
        none_found: str = _NONE_FOUND,
        windows: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        """``windows`` gives the advisory and mandatory windows when they are not the defaults
        (an S3 Express session lives 5 minutes: its windows are shorter, see ``express``)."""
        self._providers = tuple(providers)
        self._windows = windows
        self._none_found = none_found
        self._clock = clock
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        renew_locks_after_fork(self, "_lock", "_refresh_lock")
        self._current: Credentials | None = None
        self._provider: Provider | None = None
        #: How many times credentials were fetched (first resolution included).
        self.fetches = 0

    def get(self) -> Credentials:
        """The credentials to sign with now."""
        creds = self._current
        if creds is None:
            with self._lock:
                if self._current is None:
                    self._current, self._provider = self._resolve()
                creds = self._current
        if creds.expiry is None:
            return creds
        advisory, mandatory = (ADVISORY_REFRESH, MANDATORY_REFRESH) if self._windows is None else self._windows()
        remaining = creds.expiry - self._clock()
        if remaining > advisory:
            return creds
        if remaining > mandatory:
            if self._refresh_lock.acquire(blocking=False):
                try:
                    self._refresh(creds, mandatory=False)
                finally:
                    self._refresh_lock.release()
            return self._current or creds
        with self._refresh_lock:
            current = self._current or creds
            if current.expiry is None or current.expiry - self._clock() > mandatory:
                return current  # another thread refreshed while this one waited
            self._refresh(current, mandatory=True)
            return self._current or current

    def refresh_rejected(self, rejected_token: str | None) -> bool:
        """Fetch again now: the store rejected ``rejected_token`` as expired before its expiry.

        Rotation and revocation end a session early. True when credentials other than the
        rejected ones are now current (fetched here, or by another thread meanwhile); False
        when the provider hands back the same (a static token that really expired), so the
        caller raises instead of looping.
        """
        with self._refresh_lock:
            current = self._current
            if current is None or self._provider is None:
                return False
            if current.token != rejected_token:
                return True  # another thread already replaced them
            try:
                self._refresh(current, mandatory=True)
            except CredentialsError as exc:
                logger.warning("s3result: the store rejected the session token; refreshing failed: %s", exc)
                return False
            return self._current is not None and self._current.token != rejected_token

    def _refresh(self, old: Credentials, *, mandatory: bool) -> None:
        provider = self._provider
        assert provider is not None
        try:
            new = provider()
            self.fetches += 1
            if new is None:
                raise CredentialsError(f"{old.source} no longer provides credentials")
        except Exception as exc:
            left = (old.expiry or 0) - self._clock()
            if mandatory:
                raise CredentialsError(
                    f"refreshing credentials from {old.source} failed ({exc}); they expire in {left:.0f}s"
                ) from exc
            logger.warning("s3result: advisory credential refresh from %s failed (%s); retrying later", old.source, exc)
            return
        if new.secret_key != old.secret_key:
            sigv4.clear_signing_key_cache()  # the old secret's derived keys are of no more use
        logger.debug("s3result: credentials refreshed from %s", new.source)
        self._current = new

    def _resolve(self) -> tuple[Credentials, Provider]:
        tried = []
        for provider in self._providers:
            creds = provider()
            tried.append(getattr(provider, "name", type(provider).__name__))
            if creds is not None:
                self.fetches += 1
                logger.debug("s3result: credentials from %s", creds.source)
                return creds, provider
        raise CredentialsError(self._none_found.format(tried=", ".join(tried)))

    @property
    def providers(self) -> tuple[Provider, ...]:
        """The providers, in the order they are tried."""
        return self._providers

    @property
    def source(self) -> str | None:
        """Where the current credentials came from (None before first use)."""
        return None if self._current is None else self._current.source

    def __repr__(self) -> str:
        return f"CredentialSource(providers={len(self._providers)}, source={self.source!r})"
