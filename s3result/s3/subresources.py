"""Requests beside the four verbs: one raw attempt, and a bucket's subresources.

``send_raw`` sends one signed attempt and hands back the answer as it came (no retry, no
recovery, no error mapping): for the conditional-write probe's cousins in ``check`` and the
conformance suite, which look at a store's exact behaviour. ``bucket_request`` is one signed
request on a bucket subresource: ``?session`` (CreateSession, for directory buckets) at
runtime, ``?lifecycle`` and ``?versioning`` for the ``s3result`` command only. ``S3Client``
inherits both; they use its signing, pool and error mapping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from . import sigv4
from .errors import ConfigError, S3Error, TransportError

if TYPE_CHECKING:
    from .client import _Slot
    from .config import S3Config
    from .credentials import CredentialSource
    from .transport import RawResponse

__all__ = ["SubresourceRequests"]


class SubresourceRequests:
    """The raw and bucket-level requests of ``S3Client`` (a mixin: it holds no state of its own)."""

    if TYPE_CHECKING:  # provided by S3Client
        config: S3Config
        session: CredentialSource | None
        region: str
        _base: str
        _bucket_path: str

        def _target(self, key: str) -> str: ...
        def _get_slot(self) -> _Slot: ...
        def _error(self, method: str, key: str, resp: RawResponse, creating: bool) -> S3Error: ...
        def _learn_clock(self, error: S3Error, resp: RawResponse) -> bool: ...
        def _signed_headers(
            self,
            method: str,
            path: str,
            extra: list[tuple[str, str]],
            body: bytes,
            body_sha: str,
            query: Sequence[tuple[str, str]] = (),
            session: bool = True,
        ) -> list[tuple[bytes, bytes]]: ...

    def send_raw(
        self,
        method: str,
        key: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        body_sha256: str | None = None,
    ) -> RawResponse:
        """One signed attempt, answered as it came: no retry, no recovery, no error mapping.

        For probes and the conformance suite, which look at a store's exact behaviour.
        ``body_sha256`` overrides the signed payload hash (to test that stores check it).
        """
        path = self._target(key)
        wire = self._signed_headers(method, path, list(headers), body, body_sha256 or sigv4.payload_hash(body))
        return self._get_slot().transport.request(method.encode(), path.encode("ascii"), wire, body)

    def bucket_request(
        self,
        method: str,
        subresource: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        session: bool = True,
    ) -> RawResponse:
        """One signed request on a bucket subresource (``?lifecycle``), for the ``s3result`` command.

        Workers never call it: at runtime the client sends only HEAD, GET, PUT and DELETE of
        result keys. A status of 300 or more raises the mapped ``S3Error`` (key ``?lifecycle``);
        a transport failure raises as usual. No retry: the command reports, the user re-runs.
        """
        if not re.fullmatch(r"[a-z-]+", subresource):
            raise ValueError(f"not a bucket subresource: {subresource!r}")
        if self.session is not None and session:
            raise ConfigError(
                "bucket",
                f"{self.config.bucket!r} is a directory bucket: its ?{subresource} is served by the regional "
                f"endpoint s3express-control.{self.region}.amazonaws.com, which s3result does not use; "
                f"use aws s3api (e.g. put-bucket-lifecycle-configuration --bucket {self.config.bucket})",
            )
        target = f"{self._bucket_path}?{subresource}"
        extra = list(headers)
        wire = self._signed_headers(
            method, self._bucket_path, extra, body, sigv4.payload_hash(body), query=[(subresource, "")], session=session
        )
        try:
            resp = self._get_slot().transport.request(method.encode(), target.encode("ascii"), wire, body)
        except TransportError as exc:
            # Name the request and the endpoint, as _send does for keys: "connection lost" alone
            # says neither which call nor which store.
            error = type(exc)(
                f"S3 {method} ?{subresource} to {self._base}: {exc}", method=method, key=f"?{subresource}"
            )
            raise error from exc
        if resp.status >= 300:
            refused = self._error(method, f"?{subresource}", resp, False)
            if not session and self._learn_clock(refused, resp):  # CreateSession, first of all: a skewed clock
                return self.bucket_request(method, subresource, body=body, headers=extra, session=False)
            raise refused
        return resp
