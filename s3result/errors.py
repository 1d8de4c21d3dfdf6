"""Every error s3result raises: the S3 client's (``s3result.s3.errors``) and the result layer's.

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
├── BodyTooLarge              a body over ``max_result_size`` (the client's ``max_body_size``)
│   └── ResultTooLarge        ...a result to store, refused before it was sent
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

This module is the public home of every class above: the S3 client's errors live in
``s3result.s3.errors`` (it knows nothing of results) and are re-exported here with
``__module__`` set to this module, so a pickle or a Celery-serialized exception names
``s3result.errors`` whatever version of s3result wrote it.
"""

from __future__ import annotations

from .s3.errordoc import error_from_response
from .s3.errors import (
    NOT_S3,
    AccessDenied,
    AlreadyExists,
    BodyTooLarge,
    ChecksumMismatch,
    ConfigError,
    Conflict,
    ConnectError,
    CorruptResponse,
    CredentialsError,
    EndpointError,
    InvalidKey,
    NotFound,
    NotImplementedByStore,
    PreconditionFailed,
    RequestTimeout,
    S3Error,
    S3ResultError,
    ServerError,
    Throttled,
    TransportError,
    Unauthenticated,
    rebuild_error,
    rebuild_s3_error,
)

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
    "ResultTooLarge",
    "S3Error",
    "S3ResultError",
    "ServerError",
    "Throttled",
    "TransportError",
    "Unauthenticated",
    "error_from_response",
    "rebuild_error",
    "rebuild_s3_error",
]

# The names every version's pickles of these errors call (see ``s3.errors.rebuild_error``).
_rebuild = rebuild_error
_rebuild_s3 = rebuild_s3_error


class ResultTooLarge(BodyTooLarge):
    """A value exceeds ``max_result_size``; it was not sent."""
