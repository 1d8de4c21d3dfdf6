"""Building requests: a key's path on the wire, a PUT's headers, a bucket subresource.

Pure functions of the configuration and the caller's arguments; the client sends what they
build through its one pipeline (``S3Client.send``). Nothing here signs or does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from . import sigv4
from .config import S3Config
from .errors import ConfigError, InvalidKey
from .integrity import CHECKSUM_HEADER, checksum
from .request import PutMode, Request

__all__ = ["MAX_KEY_BYTES", "key_path", "put_request", "subresource_request"]

MAX_KEY_BYTES = 1024


def key_path(prefix: str, key: str) -> str:
    """The path of ``key`` on the wire under ``prefix``, checked (UTF-8, at most 1024 bytes)."""
    if not key:
        raise InvalidKey("an empty key cannot be stored")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidKey(
            f"key {key[:60]!r} cannot be an S3 key: S3 keys are UTF-8 text and UTF-8 cannot encode it ({exc.reason})"
        ) from exc
    if size > MAX_KEY_BYTES:
        raise InvalidKey(
            f"key {key[:60]!r}... is {size} bytes; S3 keys hold at most {MAX_KEY_BYTES}: use a shorter task id or prefix"
        )
    return prefix + sigv4.canonical_uri(key)


def put_request(
    config: S3Config,
    key: str,
    body: bytes,
    *,
    mode: PutMode,
    content_type: str | None,
    metadata: Mapping[str, str] | None,
    deadline: float | None,
) -> Request:
    """A PUT of a whole object: its condition, encryption, storage class, metadata and checksum."""
    headers: list[tuple[str, str]] = []
    if content_type:
        headers.append(("content-type", content_type))
    condition = mode.header
    if condition is not None:
        headers.append(condition)
    if config.sse:
        headers.append(("x-amz-server-side-encryption", config.sse))
        if config.sse_kms_key_id:
            headers.append(("x-amz-server-side-encryption-aws-kms-key-id", config.sse_kms_key_id))
    if config.storage_class:
        headers.append(("x-amz-storage-class", config.storage_class))
    for name, value in (metadata or {}).items():
        headers.append((f"x-amz-meta-{name.lower()}", value))
    headers.append((CHECKSUM_HEADER, checksum(body)))  # checked by every GET (integrity.py)
    return Request(
        "PUT",
        key,
        headers=tuple(headers),
        body=body,
        creating=mode is PutMode.CREATE,
        retry_on_conflict=condition is not None,
        deadline=deadline,
    )


def subresource_request(
    config: S3Config,
    method: str,
    subresource: str,
    *,
    region: str,
    directory: bool,
    body: bytes,
    headers: Iterable[tuple[str, str]],
    session: bool,
) -> Request:
    """One attempt on a bucket subresource (``?lifecycle``); a directory bucket's is refused, saying why."""
    if not re.fullmatch(r"[a-z-]+", subresource):
        raise ValueError(f"not a bucket subresource: {subresource!r}")
    if directory and session:
        raise ConfigError(
            "bucket",
            f"{config.bucket!r} is a directory bucket: its ?{subresource} is served by the regional "
            f"endpoint s3express-control.{region}.amazonaws.com, which s3result does not use; "
            f"use aws s3api (e.g. put-bucket-lifecycle-configuration --bucket {config.bucket})",
        )
    return Request(method, subresource=subresource, headers=tuple(headers), body=body, attempts=1, session=session)
