"""S3Client: HEAD, GET, PUT and DELETE of one key, signed, pooled, retried.

One connection pool per process: it is created lazily and keyed by PID, so a prefork child
never writes on its parent's sockets, and it is shared by every thread of the process. Each
attempt is signed again, so the date is fresh, refreshed credentials are used, and a clock
skew or a wrong region learnt from the store's answer is corrected before the next try.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import sigv4
from .answers import map_error
from .config import S3Config
from .connect import make_transport
from .credentials import CredentialSource, chain_for
from .errordoc import is_missing_key
from .errors import BodyTooLarge, ConfigError, InvalidKey, RequestTimeout, S3Error, TransportError
from .forks import on_fork_in_child, renew_locks_after_fork
from .integrity import CHECKSUM_HEADER, body_mismatch, checksum, looks_like_html
from .limiter import Pacer, ThrottledRequest, limiter_for
from .recovery import EXPIRED_TOKEN_CODES, clock_offset_to_learn, region_to_learn, rejected_token
from .request import PutMode, Request
from .retry import Backoff, RetryConfig, RetryQuota, is_retryable, sleep
from .throttling import is_throttling, retry_after
from .transport import RawResponse, Transport

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["GetResult", "HeadResult", "PutMode", "Request", "S3Client"]

logger = logging.getLogger(__name__)

MAX_KEY_BYTES = 1024
# The shortest wait an attempt gets under a deadline: enough for a loopback or LAN round trip.
_MIN_ATTEMPT_S = 0.1
_LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[?::1\]?)$")
_warned_plain_http: set[str] = set()
_warned_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _warned_lock
    _warned_lock = threading.Lock()  # a fork may have copied it held


on_fork_in_child(_after_fork_in_child)


@dataclass(frozen=True, slots=True)
class GetResult:
    """A whole object and its ETag (and the store's ``Server`` header, which names its software)."""

    body: bytes
    etag: str
    server: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class HeadResult:
    """What HEAD tells: ETag, size and the response headers."""

    etag: str
    size: int
    headers: Mapping[str, str]


@dataclass(slots=True)
class _Progress:
    """One request's way through the pipeline: attempts made, corrections spent, quota held."""

    max_attempts: int
    pacer: Pacer
    attempt: int = 0
    cost: int | None = None
    fixed_region: bool = False
    fixed_clock: bool = False
    fixed_token: bool = False
    corrupted: bool = False
    #: Set once the store has throttled this request: its turns and its budget (``limiter``).
    throttled: ThrottledRequest | None = None
    #: When the current attempt's turn was (for the limiter's measure of the store's answer).
    sent: float = 0.0


class _Again:
    """``_classify``'s answer when a correction was made: sign and send again at once."""


_AGAIN = _Again()


@dataclass(slots=True)
class _Slot:
    """The per-process resources: the pool and the executor for concurrent reads."""

    pid: int
    base: str
    transport: Transport
    executor: ThreadPoolExecutor | None = None


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
        self._transport_factory = transport_factory or self._default_transport
        self._retry = retry or RetryConfig(max_attempts=config.max_attempts)
        self._backoff = Backoff(self._retry, sleep=sleep)
        self._quota = RetryQuota(self._retry)
        #: This store's pacers, shared by every client of the process (back-pressure: limiter.py).
        self.limits = limiter_for(f"{config.base_url} {config.bucket}")
        self._clock = clock
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._slot: _Slot | None = None
        #: Seconds to add to the local clock, learnt from a RequestTimeTooSkewed answer.
        self.clock_offset = 0.0
        #: Retries performed by this client since it was made (for reports and tests).
        self.retries = 0
        #: S3 Express One Zone: this bucket's session credentials (express.py); None elsewhere.
        self.session: CredentialSource | None = None
        if config.express:
            self.session = self._session_source()
        self._set_region(config.region)
        self._warn_plain_http()

    @property
    def base_url(self) -> str:
        """The endpoint this client sends to now (after any region switch), without the key."""
        return self._base

    @property
    def credentials(self) -> CredentialSource:
        """Where this client's signing credentials come from (for reports such as ``s3result check``)."""
        return self._credentials

    def __repr__(self) -> str:
        return f"S3Client(endpoint={self._base!r}, bucket={self.config.bucket!r}, region={self.region!r})"

    # -- addressing -------------------------------------------------------------------------

    def _set_region(self, region: str) -> None:
        """(Re)compute everything that depends on the region: base URL, host, path prefix.

        Other threads share this client: the switch happens under the lock, and this
        process's pool to the old endpoint is replaced and closed, not left open.
        """
        from dataclasses import replace

        config = replace(self.config, region=region) if region != self.config.region else self.config
        base = config.base_url
        parts = urlsplit(base)
        stale: Transport | None = None
        with self._lock:
            self.region = region
            self._host = parts.netloc
            self._path_prefix = f"/{sigv4.canonical_uri(config.bucket)}/" if config.path_style else "/"
            self._bucket_path = self._path_prefix.rstrip("/") or "/"
            slot = self._slot
            if slot is not None and slot.pid == os.getpid() and slot.base != base:
                # The executor does not depend on the endpoint: the new slot keeps it.
                stale = slot.transport
                self._slot = _Slot(slot.pid, base, self._transport_factory(base), slot.executor)
            self._base = self._slot.base if self._slot is not None and self._slot.base == base else base
        if stale is not None:
            stale.close()  # requests in flight on it finish; its idle connections go now

    def _session_source(self) -> CredentialSource:
        """The directory bucket's session cache; CreateSession goes over this process's pool."""
        from .express import SessionProvider, session_hint, session_source

        mode = self.config.session_mode
        headers = [("x-amz-create-session-mode", mode)] if mode else []

        def send() -> bytes:
            try:
                return self.bucket_request("GET", "session", headers=headers, session=False).body
            except S3Error as exc:
                c = self.config
                hint = session_hint(c.bucket, self.region, c.endpoint_url, c.is_aws, exc.code)
                raise (exc if hint is None else exc.replace(hint=hint)) from None

        provider = SessionProvider(
            send,
            bucket=self.config.bucket,
            retry=self._retry,
            backoff=self._backoff,
            clock=lambda: self._clock() + self.clock_offset,
        )
        return session_source(provider, clock=lambda: self._clock() + self.clock_offset)

    def _warn_plain_http(self) -> None:
        parts = urlsplit(self._base)
        host = parts.hostname or ""
        if parts.scheme == "http" and not _LOOPBACK.match(host):
            with _warned_lock:
                if host not in _warned_plain_http:
                    _warned_plain_http.add(host)
                    logger.warning(
                        "s3result: plain http:// to %s sends results unencrypted over the network; use https://", host
                    )

    # -- per-process resources --------------------------------------------------------------

    def _default_transport(self, base_url: str) -> Transport:
        return make_transport(self.config, base_url)

    def _get_slot(self) -> _Slot:
        pid = os.getpid()
        slot = self._slot
        if slot is not None and slot.pid == pid and slot.base is self._base:
            return slot
        with self._lock:
            slot = self._slot
            if slot is None or slot.pid != pid or slot.base is not self._base:  # pragma: no branch - a race
                # After a fork the parent's pool is abandoned, never closed: closing would
                # shut sockets the parent is still using.
                slot = _Slot(pid, self._base, self._transport_factory(self._base))
                self._slot = slot
            return slot

    def renew_credentials(self) -> None:
        """Refresh the credentials now if they are due (sends nothing to the store).

        A prefork worker's main process calls it before it forks: its children inherit the
        credentials, and the main process, which makes no request of its own, would otherwise
        hand every child credentials due for a refresh (one fetch per child).
        """
        self._credentials.get()

    def close(self) -> None:
        """Close this process's pool and executor; the next request opens new ones."""
        with self._lock:
            slot, self._slot = self._slot, None
        if slot is not None and slot.pid == os.getpid():
            if slot.executor is not None:
                slot.executor.shutdown(wait=False)
            slot.transport.close()

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

        A join polling 100 keys keeps the 99 answers of a round where one GET timed out.
        Under a deadline, a GET whose turn in the pool comes after it (and after the round's
        first ``_MIN_ATTEMPT_S``) is not sent: 1,000 keys would otherwise each get a fresh
        short try, seconds past the caller's timeout.
        """
        last_send = None if deadline is None else max(deadline, time.monotonic() + _MIN_ATTEMPT_S)

        def one(key: str) -> GetResult | None | Exception:
            if last_send is not None and time.monotonic() >= last_send:
                return RequestTimeout(f"S3 GET {key!r}: not sent, the deadline passed", method="GET", key=key)
            try:
                return self.get_or_none(key, deadline=deadline, attempts=attempts)
            except Exception as exc:  # noqa: BLE001 - handed back in its place
                return exc

        if len(keys) <= 1:
            return [one(k) for k in keys]
        slot = self._get_slot()
        if slot.executor is None:
            with self._lock:
                if slot.executor is None:  # pragma: no branch - else: another thread won the race
                    # Imported here: only group reads need it, and cold start should not pay.
                    from concurrent.futures import ThreadPoolExecutor

                    workers = min(self.config.max_connections, 16)
                    slot.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3result")
        return list(slot.executor.map(one, keys))

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
        headers: list[tuple[str, str]] = []
        if content_type:
            headers.append(("content-type", content_type))
        condition = mode.header
        if condition is not None:
            headers.append(condition)
        c = self.config
        if c.sse:
            headers.append(("x-amz-server-side-encryption", c.sse))
            if c.sse_kms_key_id:
                headers.append(("x-amz-server-side-encryption-aws-kms-key-id", c.sse_kms_key_id))
        if c.storage_class:
            headers.append(("x-amz-storage-class", c.storage_class))
        for name, value in (metadata or {}).items():
            headers.append((f"x-amz-meta-{name.lower()}", value))
        headers.append((CHECKSUM_HEADER, checksum(body)))  # checked by every GET (integrity.py)
        request = Request(
            "PUT",
            key,
            headers=tuple(headers),
            body=body,
            creating=mode is PutMode.CREATE,
            retry_on_conflict=condition is not None,
            deadline=deadline,
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
        if not re.fullmatch(r"[a-z-]+", subresource):
            raise ValueError(f"not a bucket subresource: {subresource!r}")
        if self.session is not None and session:
            raise ConfigError(
                "bucket",
                f"{self.config.bucket!r} is a directory bucket: its ?{subresource} is served by the regional "
                f"endpoint s3express-control.{self.region}.amazonaws.com, which s3result does not use; "
                f"use aws s3api (e.g. put-bucket-lifecycle-configuration --bucket {self.config.bucket})",
            )
        request = Request(
            method, subresource=subresource, headers=tuple(headers), body=body, attempts=1, session=session
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
        """Sign with the current credentials and clock; the request's headers, as bytes.

        On a directory bucket: with the bucket's session credentials, or (``session=False``,
        for CreateSession itself) the ordinary ones, both under the signing name ``s3express``.
        """
        service, token_header = "s3", "x-amz-security-token"
        if self.session is None:
            creds = self._credentials.get()
        elif session:
            creds = self.session.get()
            service, token_header = "s3express", "x-amz-s3session-token"
        else:
            creds = self._credentials.get()
            service = "s3express"
        signed = sigv4.sign_s3(
            method=method,
            host=self._host,
            path=path,
            query=query,
            headers=extra,
            body_sha256=body_sha,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
            session_token=creds.token,
            region=self.region,
            now=self._clock() + self.clock_offset,
            service=service,
            token_header=token_header,
        )
        # Identity: a proxy that compresses would only add CPU on both ends (results are small,
        # or compressed already by result_compression); a gzipped answer is decoded anyway.
        wire = [(b"Host", self._host.encode()), (b"Accept-Encoding", b"identity")]
        wire += [(k.encode(), v.encode("utf-8")) for k, v in extra]
        wire += [(k.encode(), v.encode("utf-8")) for k, v in signed]
        if body or method == "PUT":
            wire.append((b"Content-Length", str(len(body)).encode()))
        return wire

    # -- the pipeline: sign -> transport -> classify -> retry or recover -> integrity ------

    def target(self, key: str) -> str:
        """The path of ``key`` on the wire, checked by this client's rules (UTF-8, at most 1024 bytes)."""
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
                f"key {key[:60]!r}... is {size} bytes; S3 keys hold at most {MAX_KEY_BYTES}: "
                "use a shorter task id or prefix"
            )
        return self._path_prefix + sigv4.canonical_uri(key)

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
        progress = _Progress(self._retry.max_attempts if request.attempts is None else request.attempts, pacer)
        while True:
            progress.attempt += 1
            if pacer.active:  # the store has throttled: wait for a turn (limiter.py)
                progress.throttled = progress.throttled or self._throttled(request, pacer)
                progress.sent = progress.throttled.turn(request.deadline)
            extra = list(request.headers)
            wire = self._signed_headers(request.method, path, extra, request.body, body_sha, query, request.session)
            outcome = self._transmit(request, target, wire)
            if isinstance(outcome, RawResponse):
                if request.raw:
                    return outcome
                verdict = self._classify(request, outcome, wire, progress)
                if isinstance(verdict, _Again):
                    continue
                if not isinstance(verdict, Exception):
                    return verdict
                outcome = verdict
            self._retry_or_raise(request, outcome, progress)

    def _transmit(self, request: Request, target: bytes, wire: list[tuple[bytes, bytes]]) -> RawResponse | Exception:
        """One attempt on this process's pool; a transport failure is returned, named, for the retry step."""
        transport = self._get_slot().transport
        method = request.method
        try:
            if request.deadline is None:
                return transport.request(method.encode(), target, wire, request.body)
            # A deadline already passed still gets a short try: get(timeout=0) polls once.
            left = max(request.deadline - time.monotonic(), _MIN_ATTEMPT_S)
            return transport.request(method.encode(), target, wire, request.body, timeout=left)
        except BodyTooLarge as exc:
            raise BodyTooLarge(f"S3 {method} {request.label}: {exc}") from None
        except TransportError as exc:
            error = type(exc)(f"S3 {method} {request.label} to {self._base}: {exc}", method=method, key=request.name)
            error.__cause__ = exc
            return error

    def _classify(
        self, request: Request, resp: RawResponse, wire: list[tuple[bytes, bytes]], progress: _Progress
    ) -> RawResponse | None | Exception | _Again:
        """What an answer means: the response, None (a missing key), ``_AGAIN`` (corrected) or an error."""
        if resp.status < 300:
            progress.pacer.succeeded()
            if request.subresource:
                return resp
            if looks_like_html(resp):
                # S3 never answers a key operation with a web page; a proxy, a login portal or
                # a wrong port does. Reported, not stored as a result.
                raise self._error(request, resp)
            corrupt = (
                body_mismatch(request.key, resp, md5_etags=self.session is None) if request.method == "GET" else None
            )
            if corrupt is None:
                self._quota.release(progress.cost)
                return resp
            if progress.corrupted:
                raise corrupt  # a wrong body twice: raised, never decoded, never tried a third time
            progress.corrupted = True
            progress.max_attempts = max(progress.max_attempts, progress.attempt + 1)  # even a poll's single try
            return corrupt
        if request.missing_ok and is_missing_key(resp.status, resp.body):
            # "Not there yet" is an answer, not a failure: no error is built (a pending poll's cost).
            progress.pacer.succeeded()
            self._quota.release(progress.cost)
            return None
        error = self._error(request, resp)
        if is_throttling(request.method, resp.status, error.code, resp.headers):
            # Back-pressure, not a failure: no attempt, no retry quota spent.
            progress.throttled = progress.throttled or self._throttled(request, progress.pacer)
            progress.throttled.answered(error, progress.sent, retry_after(resp.headers))
            progress.attempt -= 1
            return _AGAIN
        progress.pacer.succeeded()  # served: a 404 "not yet" or a 412 counts as much as a 200
        if self._recover(request, error, resp, wire, progress):
            return _AGAIN
        return error

    def _throttled(self, request: Request, pacer: Pacer) -> ThrottledRequest:
        return ThrottledRequest(pacer, self.config.throttle_wait, request.method, request.name)

    def _recover(
        self, request: Request, error: S3Error, resp: RawResponse, wire: list[tuple[bytes, bytes]], progress: _Progress
    ) -> bool:
        """Correct what the answer names (region, clock, session token), each once per request."""
        if not progress.fixed_region and self._learn_region(error, resp):
            progress.fixed_region = True
            return True
        if not progress.fixed_clock and self._learn_clock(error, resp):
            progress.fixed_clock = True
            return True
        if not progress.fixed_token and self._renew_token(error, wire, session=request.session):
            progress.fixed_token = True
            return True
        return False

    def _retry_or_raise(self, request: Request, error: Exception, progress: _Progress) -> None:
        """Wait before the next attempt, or raise ``error`` when the policy says to stop."""
        if not is_retryable(error, idempotent=request.idempotent, retry_conflict=request.retry_on_conflict):
            if isinstance(error, S3Error):
                # The store answered (a 412 lost race): the retries that led here are refunded as
                # after a success, or reads through a flaky network would drain the quota.
                self._quota.release(progress.cost)
            raise error
        if progress.attempt >= progress.max_attempts:
            raise error
        pause = self._backoff.delay(progress.attempt)
        if request.deadline is not None and time.monotonic() + pause >= request.deadline:
            raise error  # no time left for another attempt
        progress.cost = self._quota.acquire(error)
        if progress.cost is None:
            logger.warning(
                "s3result: retry quota exhausted, not retrying %s %s: %s", request.method, request.label, error
            )
            raise error
        self._backoff.sleep(pause)
        self.retries += 1
        logger.info(
            "s3result: retrying %s %s (attempt %d of %d) in %.3fs after: %s",
            request.method,
            request.label,
            progress.attempt + 1,
            self._retry.max_attempts,
            pause,
            error,
        )

    def _error(self, request: Request, resp: RawResponse) -> S3Error:
        return map_error(
            request.method,
            request.name,
            resp,
            request.creating,
            base=self._base,
            bucket=self.config.bucket,
            source=self._credentials.source,
            secret_origin=self.config.secret_origin,
        )

    def _learn_region(self, error: S3Error, resp: RawResponse) -> bool:
        """Switch region once when the store names the right one (see ``recovery``)."""
        region = region_to_learn(error, resp, current=self.region, endpoint_given=self.config.endpoint_url is not None)
        if region is None:
            return False
        logger.warning(
            "s3result: bucket %r is in region %s, not %s; using %s (set region=%s to skip this)",
            self.config.bucket,
            region,
            self.region,
            region,
            region,
        )
        self._set_region(region)
        return True

    def _renew_token(self, error: S3Error, wire: list[tuple[bytes, bytes]], *, session: bool = True) -> bool:
        """Fetch credentials again once when the store says the session token expired.

        The provider's stated expiry is what the chain refreshes by; a rotated or revoked
        token ends sooner. Fresh credentials heal that; the same ones (a static token that
        really expired) do not, and the error is raised as before.
        """
        if error.code not in EXPIRED_TOKEN_CODES:
            return False
        source, header = (
            (self._credentials, b"x-amz-security-token")
            if self.session is None or not session
            else (self.session, b"x-amz-s3session-token")
        )
        if not source.refresh_rejected(rejected_token(wire, header)):
            return False
        logger.warning("s3result: the store says the session token expired; signing with refreshed credentials")
        return True

    def _learn_clock(self, error: S3Error, resp: RawResponse) -> bool:
        """Correct the clock once from the store's Date header when the store says it is off."""
        offset = clock_offset_to_learn(error, resp, clock=self._clock, current_offset=self.clock_offset)
        if offset is None:
            return False
        logger.warning("s3result: local clock is %.0fs off the store's; correcting signatures by that much", -offset)
        self.clock_offset = offset
        return True
