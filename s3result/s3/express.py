"""S3 Express One Zone: directory buckets, their zonal endpoints and their session credentials.

A directory bucket is named ``name--<zone id>--x-s3`` and lives in one Availability Zone,
behind ``https://<bucket>.s3express-<zone id>.<region>.amazonaws.com`` (virtual-hosted only).
Object requests there are not signed with the account's credentials but with a session's:
``CreateSession`` (``GET /?session``, signed with the ordinary credentials under the signing
name ``s3express``) answers an access key, a secret, a session token and an expiry five
minutes away. Object requests are signed with those under ``s3express`` and carry the token
in ``x-amz-s3session-token`` (``X-Amz-Security-Token`` is not accepted there).

The session is a credentials source like any other (``CredentialSource``, one per client, so
one per bucket): in the last 15% of its life one thread asks for the next session while the
others go on signing with the current one; in the last 1/30 every caller waits for it (one
request, not one per thread). For a 5-minute session these are botocore's 45 s and 10 s
(``utils.IdentityCache``); a shorter session (the testing kit's front) scales them down. A
session the store refuses before its expiry (``ExpiredToken``) is renewed once and the request
sent once more, as for any session token (the client's recovery step, ``corrections``).

After a fork the child keeps the parent's session (it is only credentials, valid until its
expiry) and renews it over its own connections: the client's pool is per process.

Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateSession.html; the endpoint
rules are those of the S3 endpoint ruleset botocore ships (the tests compare with it).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .credentials.base import Credentials
from .credentials.chain import CredentialSource
from .errors import CredentialsError, S3Error, TransportError
from .retry import Backoff, RetryConfig, is_retryable, retry_call

if TYPE_CHECKING:
    from .config import S3Config

__all__ = [
    "SESSION_TOKEN_HEADER",
    "SessionProvider",
    "UnreadableSession",
    "client_session",
    "parse_session",
    "refresh_windows",
    "session_hint",
    "session_source",
]

logger = logging.getLogger(__name__)

#: Where object requests carry the session token.
SESSION_TOKEN_HEADER = "x-amz-s3session-token"
_FIELD = re.compile(rb"<(AccessKeyId|SecretAccessKey|SessionToken|Expiration)>([^<]*)</\1>")
# botocore's windows for a 5-minute session (45 s, 10 s), as fractions of the session's life.
_ADVISORY_SHARE = 45 / 300
_MANDATORY_SHARE = 10 / 300


class UnreadableSession(CredentialsError):
    """A CreateSession answer without the credentials in it: damaged on its way, or not S3's."""


_CREDENTIAL_CODES = frozenset({"SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "InvalidToken"})


def session_hint(bucket: str, region: str, endpoint: str | None, on_aws: bool, code: str) -> str | None:
    """The fix for a CreateSession that failed with ``code``; None where the error's own hint is right.

    On Amazon S3 a refusal means a missing ``s3express:CreateSession`` grant (``s3:GetObject`` is
    not what a directory bucket asks for). Elsewhere the likely cause is the name: ``--x-s3``
    makes any bucket a directory bucket, which only AWS serves, so the name is the fix, named first.
    """
    grant = f'grant "s3express:CreateSession" on "arn:aws:s3express:{region}:ACCOUNT_ID:bucket/{bucket}"'
    if on_aws:
        return f"{grant} to these credentials" if code == "AccessDenied" else None
    if code in _CREDENTIAL_CODES:
        # The store checked our signature: it speaks S3 Express (a front such as the testing
        # kit's); the credentials are what to fix, as the error's own hint says.
        return None
    return (
        f"{bucket!r} ends in --x-s3, which makes it an S3 Express One Zone directory bucket (AWS only); "
        f"on {endpoint}, a store that is not Amazon S3, use a bucket name without --x-s3 "
        f"(on S3 Express behind this endpoint: {grant})"
    )


def parse_session(body: bytes) -> tuple[str, str, str, float]:
    """Access key, secret, token and expiry (UNIX time) of a ``CreateSessionResult``."""
    from xml.sax.saxutils import unescape  # only on a session fetch, every few minutes

    fields = {name.decode(): unescape(value.decode("utf-8")).strip() for name, value in _FIELD.findall(body)}
    missing = [n for n in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration") if not fields.get(n)]
    if missing:
        raise UnreadableSession(f"CreateSession answered without {', '.join(missing)}")
    stamp = fields["Expiration"].replace("Z", "+00:00")
    try:
        expiry = datetime.fromisoformat(stamp)
    except ValueError:
        raise UnreadableSession(f"CreateSession answered an unreadable Expiration {fields['Expiration']!r}") from None
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=timezone.utc)
    return fields["AccessKeyId"], fields["SecretAccessKey"], fields["SessionToken"], expiry.timestamp()


def refresh_windows(lifetime: float) -> tuple[float, float]:
    """Seconds before expiry at which to refresh in one thread, and at which every caller waits.

    A share of the session's life (45 s and 10 s of 5 minutes), but the mandatory window keeps
    up to a second (a sixth of a short session) for a request signed now to arrive in time.
    """
    mandatory = max(lifetime * _MANDATORY_SHARE, min(1.0, lifetime / 6))
    return max(lifetime * _ADVISORY_SHARE, 2 * mandatory), mandatory


class SessionProvider:
    """A credentials provider that runs CreateSession; ``send`` does the request and returns its XML.

    Transient failures (a lost connection, a 503, an answer that does not parse) are tried again
    under the client's retry policy (``retry.retry_call``); a refusal (403: no
    ``s3express:CreateSession`` permission) is raised at once.
    """

    name = "CreateSession"

    def __init__(
        self,
        send: Callable[[], bytes],
        *,
        bucket: str,
        retry: RetryConfig,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._send = send
        self._bucket = bucket
        self._retry = retry
        self._backoff = backoff
        self._clock = clock
        #: The granted life of the current session, in seconds (for the refresh windows).
        self.lifetime = 300.0
        #: Sessions created by this provider (for ``check`` and the tests).
        self.sessions = 0

    def __call__(self) -> Credentials:
        access, secret, token, expiry = retry_call(
            # An answer that does not parse was damaged on its way: asked again, as a lost reply.
            lambda: parse_session(self._send()),
            config=self._retry,
            retryable=_may_heal,
            backoff=self._backoff,
            what=f"CreateSession on {self._bucket}",
        )
        self.lifetime = max(expiry - self._clock(), 1.0)
        self.sessions += 1
        logger.debug("s3result: new S3 Express session for %s, %.0fs long", self._bucket, self.lifetime)
        return Credentials(access, secret, token, expiry=expiry, source=f"CreateSession on {self._bucket}")

    def __repr__(self) -> str:
        return f"SessionProvider(bucket={self._bucket!r}, sessions={self.sessions})"


def _may_heal(exc: Exception) -> bool:
    """A CreateSession failure worth another try: transient, or an answer damaged on its way."""
    return isinstance(exc, UnreadableSession) or (isinstance(exc, (S3Error, TransportError)) and is_retryable(exc))


def session_source(provider: SessionProvider, *, clock: Callable[[], float] = time.time) -> CredentialSource:
    """The per-bucket session cache: a ``CredentialSource`` over ``provider``, windows scaled to the session."""
    return CredentialSource(
        [provider],
        clock=clock,
        windows=lambda: refresh_windows(provider.lifetime),
        none_found="CreateSession answered nothing ({tried})",
    )


def client_session(
    config: S3Config,
    *,
    create_session: Callable[[list[tuple[str, str]]], bytes],
    region: Callable[[], str],
    retry: RetryConfig,
    backoff: Backoff,
    clock: Callable[[], float],
) -> CredentialSource:
    """A client's session cache for its directory bucket; ``create_session`` sends CreateSession over its pool."""
    mode = config.session_mode
    headers = [("x-amz-create-session-mode", mode)] if mode else []

    def send() -> bytes:
        try:
            return create_session(headers)
        except S3Error as exc:
            hint = session_hint(config.bucket, region(), config.endpoint_url, config.is_aws, exc.code)
            raise (exc if hint is None else exc.replace(hint=hint)) from None

    provider = SessionProvider(send, bucket=config.bucket, retry=retry, backoff=backoff, clock=clock)
    return session_source(provider, clock=clock)
