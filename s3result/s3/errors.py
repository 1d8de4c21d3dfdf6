"""Every error the S3 client raises, in one shallow tree.

```
S3ResultError                 base of everything below
├── ConfigError               a setting is missing or malformed (names the setting)
├── CredentialsError          no provider found credentials, or refreshing them failed
├── TransportError            the request did not produce an HTTP response
│   ├── ConnectError          nothing was sent: refused, DNS, TLS handshake
│   │   └── EndpointError     ...and retrying cannot help: no such host name, TLS mismatch
│   ├── RequestTimeout        sent, but no (complete) answer in time
│   └── CorruptResponse       the body is not what the store sent: retried like a lost reply
│       └── ChecksumMismatch  ...its checksum or MD5 ETag says so: retried once, then raised
├── InvalidKey                a key no S3 store can hold (over 1024 bytes, say)
├── BodyTooLarge              a response body over ``S3Config.max_body_size``
└── S3Error                   the store answered with an error status
    ├── NotFound              404 (NoSuchKey, NoSuchBucket)
    ├── PreconditionFailed    412, or 304 on a conditional create
    │   └── AlreadyExists     If-None-Match: * met an existing key
    ├── Conflict              409 (ConditionalRequestConflict, OperationAborted)
    ├── AccessDenied          403
    ├── Unauthenticated       401
    ├── NotImplementedByStore 501: the store lacks a feature we asked for
    └── ServerError           5xx: the store's own failure, usually transient
        └── Throttled         the store kept throttling (503 SlowDown, 429) past ``throttle_wait``
```

An answer whose body is not S3 XML (a web server's or a proxy's page) keeps its status's class
and has the code ``NotS3``: its 403 asks for no IAM grant, its 404 is no missing key.

No error carries headers, credentials or a signature: messages name the method, the key and
what to do. Every class pickles (Celery ships exceptions between processes).

Every public class here says ``__module__ = "s3result.errors"``: that module re-exports them and
stays their public home, and Celery stores an exception by its class's module and name, so a
worker of any version reads an error stored by another (the classes lived there before this
package existed).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "AccessDenied",
    "AlreadyExists",
    "BodyTooLarge",
    "ChecksumMismatch",
    "ConfigError",
    "Conflict",
    "ConnectError",
    "CorruptResponse",
    "CredentialsError",
    "EndpointError",
    "InvalidKey",
    "NOT_S3",
    "NotFound",
    "NotImplementedByStore",
    "PreconditionFailed",
    "RequestTimeout",
    "S3Error",
    "S3ResultError",
    "ServerError",
    "Throttled",
    "TransportError",
    "Unauthenticated",
    "default_hint",
    "rebuild_error",
    "rebuild_s3_error",
]


class S3ResultError(Exception):
    """Base class of every error raised by s3result."""


class ConfigError(S3ResultError, ValueError):
    """A setting is missing or malformed; the message names the setting and the fix."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.detail = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.setting, self.detail))


class CredentialsError(S3ResultError):
    """No credential provider found credentials, or a refresh failed."""


class TransportError(S3ResultError):
    """The request produced no HTTP response."""

    def __init__(self, message: str, *, method: str = "", key: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.key = key

    def __reduce__(self) -> tuple[Any, ...]:
        return (rebuild_error, (type(self), str(self), {"method": self.method, "key": self.key}))


class ConnectError(TransportError):
    """Nothing reached the store: connection refused, DNS failure or TLS handshake failure."""


class EndpointError(ConnectError):
    """Permanent: the endpoint's name does not resolve, or TLS cannot agree; fix the setting."""


class RequestTimeout(TransportError):
    """The store did not answer (completely) within the read or write timeout."""


class CorruptResponse(TransportError):
    """The body received does not match what the store said it sent; safe to retry."""


class ChecksumMismatch(CorruptResponse):
    """A GET body failed its checksum (or MD5 ETag) twice in a row: never decoded, never waited out."""


class InvalidKey(S3ResultError, ValueError):
    """The key cannot be stored: too long, or a form the store rejects; nothing was sent."""


class BodyTooLarge(S3ResultError):
    """A response body over the client's size limit (``max_body_size``); it was not read whole."""


#: The code of an error answered with a body that is not S3 XML (an HTML page, say): the
#: endpoint is not the store's S3 API, whatever the status says.
NOT_S3 = "NotS3"

_HINTS = {
    "SignatureDoesNotMatch": "the secret access key is wrong for this access key id; fix s3_secret_access_key or AWS_SECRET_ACCESS_KEY",
    "InvalidAccessKeyId": "the store does not know this access key id; fix s3_access_key_id or AWS_ACCESS_KEY_ID",
    "NoSuchBucket": "create the bucket, or fix the bucket name in result_backend / s3_bucket",
    "RequestTimeTooSkewed": "this machine's clock is off; run NTP (s3result corrects the skew once per process)",
    "AccessDenied": "grant s3:GetObject, s3:PutObject and s3:DeleteObject on the prefix (and s3:ListBucket on the bucket)",
    "AuthorizationHeaderMalformed": "the region is wrong; set region= in result_backend or s3_region",
    "PermanentRedirect": "the bucket lives in another region; set region= in result_backend or s3_region",
    "TemporaryRedirect": "s3result does not follow redirects to another host (it would sign for it): set region= "
    "in result_backend or s3_region to the bucket's region, or endpoint_url to the host named",
    "InvalidBucketName": "fix the bucket name in result_backend / s3_bucket",
    "ExpiredToken": "the session token expired; refresh the credentials",
    "InvalidToken": "the session token is invalid; refresh the credentials",
    NOT_S3: "check endpoint_url: it must be the store's S3 API (scheme, host and port), not a web server or a proxy's page",
}


class S3Error(S3ResultError):
    """The store answered with an error; carries what identifies it, never headers."""

    def __init__(
        self,
        *,
        status: int,
        code: str = "",
        message: str = "",
        request_id: str = "",
        key: str = "",
        method: str = "",
        region: str = "",
        hint: str = "",
    ) -> None:
        self.status = status
        self.code = code or _default_code(status)
        self.message = message
        self.request_id = request_id
        self.key = key
        self.method = method
        self.region = region
        #: Replaces the code's generic hint when the caller knows better (where a secret came from).
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.method} {self.key!r}" if self.method else repr(self.key)
        text = f"S3 {where} failed: {self.status} {self.code}"
        message = _first_sentence(self.message)
        if message:
            text += f": {message}"
        hint = self.hint or _HINTS.get(self.code)
        if hint:
            text += f" ({hint})"
        return text

    def fields(self) -> dict[str, Any]:
        """What this error is built from: for pickles, ``replace`` and a limiter's last answer."""
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "request_id": self.request_id,
            "key": self.key,
            "method": self.method,
            "region": self.region,
            "hint": self.hint,
        }

    def replace(self, **changes: Any) -> S3Error:
        """The same error (same class) with some fields changed: a better message, key or hint."""
        return type(self)(**{**self.fields(), **changes})

    def __reduce__(self) -> tuple[Any, ...]:
        return (rebuild_s3_error, (type(self), self.fields()))


class NotFound(S3Error):
    """404: no such key (or no such bucket)."""


class PreconditionFailed(S3Error):
    """412 (or 304 on a create): the conditional write did not apply."""


class AlreadyExists(PreconditionFailed):
    """A create with ``If-None-Match: *`` found the key already there."""


class Conflict(S3Error):
    """409: a concurrent conditional write won; the caller may retry."""


class AccessDenied(S3Error):
    """403: the credentials are valid but lack a permission, or the signature is wrong."""


class Unauthenticated(S3Error):
    """401: the store wants credentials it did not get."""


class NotImplementedByStore(S3Error):
    """501: the store does not implement what was asked (Swift's conditional PUT, say)."""


class ServerError(S3Error):
    """5xx: a failure inside the store."""


class Throttled(ServerError):
    """The store answered "slow down" (503 SlowDown, 429) for longer than ``throttle_wait`` allows."""


#: The longest store message kept on the error's one line; the whole one stays in ``.message``.
_MESSAGE_LIMIT = 160


def default_hint(code: str) -> str:
    """The fix this project suggests for an S3 error code ("" when it has none)."""
    return _HINTS.get(code, "")


def _first_sentence(message: str) -> str:
    """The store's message up to its first sentence's end: the rest is boilerplate.

    "The request signature we calculated does not match the signature you provided. Check your
    key and signing method." says all it has to say in its first sentence, and the hint that
    follows it says what to fix. The request id stays in ``.request_id`` (and ``check --json``).
    """
    text = " ".join(message.split())
    end = re.search(r"[.!?](\s|$)", text)
    if end:
        text = text[: end.start() + 1]
    if len(text) > _MESSAGE_LIMIT:
        # Cut between words, never inside one ("unless the cred..." reads as a typo, or a secret).
        text = text[: _MESSAGE_LIMIT - 3].rsplit(" ", 1)[0].rstrip(" ,;:") + "..."
    return text


def rebuild_error(cls: type[TransportError], message: str, fields: dict[str, str]) -> TransportError:
    """A transport error back from its pickle (``TransportError.__reduce__``)."""
    return cls(message, **fields)


def rebuild_s3_error(cls: type[S3Error], fields: dict[str, Any]) -> S3Error:
    """A store's error back from its pickle (``S3Error.__reduce__``)."""
    return cls(**fields)


# Pickles name these two as ``s3result.errors._rebuild`` and ``s3result.errors._rebuild_s3``, as
# every version wrote them: a worker of any version must find what another pickled. So they
# keep those names for pickle (their home module binds both spellings), under public ones here.
rebuild_error.__qualname__ = "_rebuild"
rebuild_s3_error.__qualname__ = "_rebuild_s3"


_DEFAULT_CODES = {
    301: "PermanentRedirect",
    304: "NotModified",
    307: "TemporaryRedirect",
    400: "BadRequest",
    401: "Unauthorized",
    403: "AccessDenied",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    412: "PreconditionFailed",
    500: "InternalError",
    501: "NotImplemented",
    503: "ServiceUnavailable",
}


def _default_code(status: int) -> str:
    return _DEFAULT_CODES.get(status, f"HTTP{status}")


# The public home of these classes, and of the functions their pickles name (see the docstring).
for _obj in (
    *(globals()[_name] for _name in __all__ if isinstance(globals()[_name], type)),
    rebuild_error,
    rebuild_s3_error,
):
    _obj.__module__ = "s3result.errors"
del _obj
