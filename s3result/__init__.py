"""s3result: a Celery result backend for S3 and S3-compatible stores, without boto.

Only cheap names are re-exported here: importing ``s3result`` must not import Celery or
httpx (the backend class lives in ``s3result.backend`` and Celery finds it through the
``celery.result_backends`` entry point named ``s3result``).
"""

from __future__ import annotations

from .errors import (
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
    ResultTooLarge,
    S3Error,
    S3ResultError,
    ServerError,
    Throttled,
    TransportError,
    Unauthenticated,
)

__version__ = "0.1.0"

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
    "__version__",
]
