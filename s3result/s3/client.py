"""S3Client: HEAD, GET, PUT and DELETE of one key, signed, pooled, retried.

One connection pool per process: it is created lazily and keyed by PID, so a prefork child
never writes on its parent's sockets, and it is shared by every thread of the process. Each
attempt is signed again, so the date is fresh, refreshed credentials are used, and a clock
skew or a wrong region learnt from the store's answer is corrected before the next try.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import sigv4
from .answers import map_error
from .attempts import judge, throttled, transmit, wait_or_raise
from .building import key_path, put_request, subresource_request
from .config import S3Config
from .connect import make_transport, warn_plain_http
from .corrections import correct
from .credentials import CredentialSource, chain_for
from .errors import S3Error
from .limiter import limiter_for
from .pool import ProcessPool, Slot
from .process import renew_locks_after_fork
from .progress import Again, Progress
from .reads import read_each
from .replies import GetResult, HeadResult
from .request import PutMode, Request
from .retry import Backoff, RetryConfig, RetryQuota, sleep
from .transport import RawResponse, Transport
from .wire import signed_wire, signing_identity

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["GetResult", "HeadResult", "PutMode", "Request", "S3Client"]

logger = logging.getLogger(__name__)


class S3Client:
    """A small S3 client for one bucket: exactly HEAD, GET, PUT and DELETE of keys."""

    def __init__(
        self,
        config: S3Config,
        *,
        credentials: CredentialSource | None = None,
        transport_factory: Callable[[str], Transport] | None = None,
        retry: RetryConfig | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = sleep,
    ) -> None:
        self.config = config
        self._credentials = credentials or chain_for(config)
        #: This process's pool and reader threads (``pool``); the endpoint is set by the region below.
        self.pool = ProcessPool(transport_factory or self._default_transport, config.base_url)
        self._retry = retry or RetryConfig(max_attempts=config.max_attempts)
        self._backoff = Backoff(self._retry, sleep=sleep)
        self._quota = RetryQuota(self._retry)
        #: This store's pacers, shared by every client of the process (back-pressure: limiter.py).
        self.limits = limiter_for(config.store_id)
        self._clock = clock
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        #: Seconds to add to the local clock, learnt from a RequestTimeTooSkewed answer.
        self.clock_offset = 0.0
        #: Retries performed by this client since it was made (for reports and tests).
        self.retries = 0
        #: S3 Express One Zone: this bucket's session credentials (express.py); None elsewhere.
        self.session: CredentialSource | None = None
        if config.express:
            self.session = self._session_source()
        self._set_region(config.region)
        warn_plain_http(self.pool.base)

    @property
    def base_url(self) -> str:
        """The endpoint this client sends to now (after any region switch), without the key."""
        return self.pool.base

    @property
    def credentials(self) -> CredentialSource:
        """Where this client's signing credentials come from (for reports such as ``s3result check``)."""
        return self._credentials

    def __repr__(self) -> str:
        return f"S3Client(endpoint={self.pool.base!r}, bucket={self.config.bucket!r}, region={self.region!r})"

    # -- addressing -------------------------------------------------------------------------

    def switch_region(self, region: str) -> None:
        """Send to ``region`` from now on (the bucket's region, learnt from the store's answer)."""
        self._set_region(region)

    def _set_region(self, region: str) -> None:
        """(Re)compute everything that depends on the region: base URL, host, path prefix.

        Other threads share this client: the switch happens under the lock, and this
        process's pool to the old endpoint is replaced and closed, not left open.
        """
        from dataclasses import replace

        config = replace(self.config, region=region) if region != self.config.region else self.config
        parts = urlsplit(config.base_url)
        with self._lock:
            self.region = region
            self._host = parts.netloc
            self._path_prefix = f"/{sigv4.canonical_uri(config.bucket)}/" if config.path_style else "/"
            self._bucket_path = self._path_prefix.rstrip("/") or "/"
            self.pool.switch(config.base_url)

    def _session_source(self) -> CredentialSource:
        """The directory bucket's session cache; CreateSession goes over this process's pool."""
        from .express import client_session  # only a directory bucket pays for it

        def create_session(headers: list[tuple[str, str]]) -> bytes:
            return self.bucket_request("GET", "session", headers=headers, session=False).body

        return client_session(
            self.config,
            create_session=create_session,
            region=lambda: self.region,
            retry=self._retry,
            backoff=self._backoff,
            clock=lambda: self._clock() + self.clock_offset,
        )

    # -- per-process resources --------------------------------------------------------------

    def _default_transport(self, base_url: str) -> Transport:
        return make_transport(self.config, base_url)

    def _get_slot(self) -> Slot:
        return self.pool.get()

    def renew_credentials(self) -> None:
        """Refresh the credentials now if they are due (sends nothing to the store).

        A prefork worker's main process calls it before it forks: its children inherit the
        credentials, and the main process, which makes no request of its own, would otherwise
        hand every child credentials due for a refresh (one fetch per child).
        """
        self._credentials.get()

    def close(self) -> None:
        """Close this process's pool and executor; the next request opens new ones."""
        self.pool.close()

    # -- the four verbs ---------------------------------------------------------------------

    def get(self, key: str, *, deadline: float | None = None, attempts: int | None = None) -> GetResult:
        """GET a whole object; ``NotFound`` when it is missing.

        ``deadline`` (``time.monotonic()``) bounds every wait of the request and its retries;
        ``attempts`` overrides ``max_attempts`` (a polling loop makes one per poll).
        """
        resp = self.send(Request("GET", key, deadline=deadline, attempts=attempts))
        assert resp is not None  # only a missing_ok request answers None
        return GetResult(resp.body, resp.headers.get("etag", ""), resp.headers.get("server", ""))

    def get_or_none(self, key: str, *, deadline: float | None = None, attempts: int | None = None) -> GetResult | None:
        """GET, with a missing key as None: one request, no HEAD first, no error built.

        Only a missing *key* is None: a missing bucket (404 ``NoSuchBucket``) is raised, and so
        is a 404 that is not S3's (``NotS3``: a web page from whatever answers on the endpoint),
        or a wrong bucket name or endpoint would read as "pending" forever.
        """
        resp = self.send(Request("GET", key, missing_ok=True, deadline=deadline, attempts=attempts))
        return (
            None if resp is None else GetResult(resp.body, resp.headers.get("etag", ""), resp.headers.get("server", ""))
        )

    def get_many(
        self, keys: Sequence[str], *, deadline: float | None = None, attempts: int | None = None
    ) -> list[GetResult | None]:
        """GET every key concurrently over the pool; None where missing, order kept."""
        found = self.get_each(keys, deadline=deadline, attempts=attempts)
        for item in found:
            if isinstance(item, Exception):
                raise item
        return [item for item in found if not isinstance(item, Exception)]

    def get_each(
        self, keys: Sequence[str], *, deadline: float | None = None, attempts: int | None = None
    ) -> list[GetResult | None | Exception]:
        """Like ``get_many``, with each key's error in its place instead of raised.

        A join polling 100 keys keeps the 99 answers of a round where one GET timed out; under
        a deadline, reads whose turn comes too late are not sent (``reads``).
        """

        def read(key: str) -> GetResult | None:
            return self.get_or_none(key, deadline=deadline, attempts=attempts)

        return read_each(read, keys, deadline=deadline, executor=self._executor)

    def _executor(self) -> ThreadPoolExecutor:
        return self.pool.executor(self.config.max_connections)

    def head(self, key: str, *, deadline: float | None = None) -> HeadResult:
        """HEAD an object; errors are classified by status alone (a HEAD has no body)."""
        resp = self.send(Request("HEAD", key, deadline=deadline))
        assert resp is not None  # only a missing_ok request answers None
        return HeadResult(resp.headers.get("etag", ""), int(resp.headers.get("content-length", "0")), resp.headers)

    def put(
        self,
        key: str,
        body: bytes,
        *,
        mode: PutMode = PutMode.OVERWRITE,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> str:
        """PUT a whole object and return its ETag.

        ``mode``: ``PutMode.CREATE`` creates only when absent (``AlreadyExists`` otherwise);
        ``PutMode.update(etag)`` replaces only that version (``PreconditionFailed``);
        ``deadline`` (``time.monotonic()``) bounds the request and its retries.
        """
        request = put_request(
            self.config, key, body, mode=mode, content_type=content_type, metadata=metadata, deadline=deadline
        )
        resp = self.send(request)
        assert resp is not None  # only a missing_ok request answers None
        return resp.headers.get("etag", "")

    def delete(self, key: str, *, deadline: float | None = None) -> None:
        """DELETE an object; deleting a missing key is not an error (S3 answers 204).

        A missing bucket and a 404 page that is not S3's (``NotS3``) are raised: "already gone"
        would hide a wrong bucket or endpoint behind a ``forget()`` that seems to work.
        """
        self.send(Request("DELETE", key, missing_ok=True, deadline=deadline))

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
        request = Request(method, key, headers=tuple(headers), body=body, body_sha256=body_sha256, attempts=1, raw=True)
        resp = self.send(request)
        assert resp is not None  # a raw request answers whatever came
        return resp

    def bucket_request(
        self,
        method: str,
        subresource: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        session: bool = True,
    ) -> RawResponse:
        """One request on a bucket subresource (``?lifecycle``), for the ``s3result`` command.

        Workers never call it: at runtime the client sends only HEAD, GET, PUT and DELETE of
        result keys (and a directory bucket's CreateSession). A status of 300 or more raises the
        mapped ``S3Error`` (key ``?lifecycle``). No retry: the command reports, the user re-runs.
        """
        request = subresource_request(
            self.config,
            method,
            subresource,
            region=self.region,
            directory=self.session is not None,
            body=body,
            headers=headers,
            session=session,
        )
        resp = self.send(request)
        assert resp is not None  # only a missing_ok request answers None
        return resp

    def _signed_headers(
        self,
        method: str,
        path: str,
        extra: list[tuple[str, str]],
        body: bytes,
        body_sha: str,
        query: Sequence[tuple[str, str]] = (),
        session: bool = True,
    ) -> list[tuple[bytes, bytes]]:
        """Sign with the current credentials and clock (``wire``); the request's headers, as bytes."""
        creds, service, token_header = signing_identity(self._credentials, self.session, session=session)
        return signed_wire(
            method=method,
            host=self._host,
            path=path,
            query=query,
            extra=extra,
            body=body,
            body_sha=body_sha,
            creds=creds,
            region=self.region,
            now=self._clock() + self.clock_offset,
            service=service,
            token_header=token_header,
        )

    # -- the pipeline: sign -> transport -> classify -> retry or recover -> integrity ------

    def target(self, key: str) -> str:
        """The path of ``key`` on the wire, checked by this client's rules (UTF-8, at most 1024 bytes)."""
        return key_path(self._path_prefix, key)

    def send(self, request: Request) -> RawResponse | None:
        """The one pipeline every request goes through; the answer, or None for a missing key.

        Each attempt waits for its turn while the store throttles (``limiter``), is signed again
        (fresh date, refreshed credentials, learnt clock), sent, and its answer classified: a
        success (its body checked), a missing key (``missing_ok``), throttling (back-pressure:
        no attempt, no retry quota spent), a correction to make before trying again (region,
        clock, session token: once each), or an error retried under the policy (``retry``) or raised.
        """
        if request.subresource:
            path, query = self._bucket_path, [(request.subresource, "")]
            target = f"{path}?{request.subresource}".encode("ascii")
        else:
            path, query = self.target(request.key), []
            target = path.encode("ascii")
        body_sha = request.body_sha256 or sigv4.payload_hash(request.body)
        pacer = self.limits.pacer(request.method)
        progress = Progress(self._retry.max_attempts if request.attempts is None else request.attempts, pacer)
        while True:
            progress.attempt += 1
            if pacer.active:  # the store has throttled: wait for a turn (limiter.py)
                progress.throttled = progress.throttled or throttled(request, progress, self.config.throttle_wait)
                progress.sent = progress.throttled.turn(request.deadline)
            extra = list(request.headers)
            wire = self._signed_headers(request.method, path, extra, request.body, body_sha, query, request.session)
            outcome = transmit(
                self._get_slot().transport,
                request,
                target,
                wire,
                base=self.pool.base,
                endpoint_setting=self.config.endpoint_origin or "endpoint_url",
            )
            if isinstance(outcome, RawResponse):
                if request.raw:
                    return outcome
                verdict = self._classify(request, outcome, wire, progress)
                if isinstance(verdict, Again):
                    continue
                if not isinstance(verdict, Exception):
                    return verdict
                outcome = verdict
            self._retry_or_raise(request, outcome, progress)

    def _classify(
        self, request: Request, resp: RawResponse, wire: list[tuple[bytes, bytes]], progress: Progress
    ) -> RawResponse | None | Exception | Again:
        """What an answer means (``attempts.judge``); the recovery step corrects this client."""
        return judge(
            request,
            resp,
            progress,
            error_for=lambda: self._error(request, resp),
            md5_etags=self.session is None,
            quota=self._quota,
            throttle_wait=self.config.throttle_wait,
            recover=lambda error: correct(
                self, error, resp, wire, progress, session=request.session, clock=self._clock
            ),
        )

    def _retry_or_raise(self, request: Request, error: Exception, progress: Progress) -> None:
        """Wait before the next attempt, or raise ``error`` when the policy says to stop."""
        wait_or_raise(request, error, progress, retry=self._retry, backoff=self._backoff, quota=self._quota)
        self.retries += 1

    def _error(self, request: Request, resp: RawResponse) -> S3Error:
        return map_error(
            request.method,
            request.name,
            resp,
            request.creating,
            base=self.pool.base,
            bucket=self.config.bucket,
            source=self._credentials.source,
            secret_origin=self.config.secret_origin,
        )
