"""A small S3 client that stands on its own: no Celery, no kombu, no result-backend vocabulary.

``S3Client(S3Config(bucket=..., endpoint_url=..., region=...))`` sends HEAD, GET, PUT and DELETE
of keys (and a few bucket subresources), signed with SigV4, pooled, retried, with credentials
given or found by the AWS chain. The errors are in ``s3result.s3.errors`` (their public home is
``s3result.errors``).

Names are loaded on first use: ``import s3result`` reads ``s3result.s3.errors`` and must stay
cheap (no ssl, no httpcore), so this package imports the client only when it is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import S3Client
    from .config import Addressing, S3Config
    from .replies import GetResult, HeadResult
    from .request import PutMode, Request
    from .retry import Backoff, RetryConfig

__all__ = [
    "Addressing",
    "Backoff",
    "GetResult",
    "HeadResult",
    "PutMode",
    "Request",
    "RetryConfig",
    "S3Client",
    "S3Config",
]

_HOMES = {
    "Addressing": "config",
    "Backoff": "retry",
    "GetResult": "replies",
    "HeadResult": "replies",
    "PutMode": "request",
    "Request": "request",
    "RetryConfig": "retry",
    "S3Client": "client",
    "S3Config": "config",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
