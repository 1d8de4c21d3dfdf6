"""S3Backend: a Celery result backend on S3 and S3-compatible stores, without boto.

A read is one GET (a 404 is "pending"); ``mget`` runs concurrently over the pool, so
``GroupResult.get()`` is one round of parallel GETs. Settings are read once, in ``__init__``,
through ``config.from_celery_conf``; a bad one becomes ``ImproperlyConfigured`` naming it.

Where the store honours conditional writes (probed once per store and bucket, the verdict
kept in the bucket for the next process, see ``precondition``), a state write is one ``PUT If-None-Match: *``; only when the key exists
is it read, and replaced with ``PUT If-Match`` unless it already holds a SUCCESS. Chords then
count their parts in a compare-and-swap counter object (``chords``: the producer decides
native or ``chord_unlock`` once, each part counts once, the part that completes the count
publishes the callback). Elsewhere, Celery's read-then-write and ``chord_unlock`` are used.
"""

from __future__ import annotations

import os
import time
import weakref
from types import SimpleNamespace
from typing import Any

from celery import signals, states
from celery.exceptions import ImproperlyConfigured
from celery.utils.log import get_logger
from kombu.utils.encoding import bytes_to_str

from .cas import Attempt, compare_and_swap
from .chording import ChordMethods
from .clients import shared_client
from .config import ConditionalWrites, Settings, from_celery_conf, raw_slash_warning
from .errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    InvalidKey,
    NotFound,
    PreconditionFailed,
    ResultTooLarge,
    S3Error,
    TransportError,
)
from .etags import EtagMemory
from .precondition import Support, known, support_for
from .s3.client import S3Client
from .s3.request import PutMode
from .s3.retry import Backoff, RetryConfig, is_permanent, is_retryable
from .waits import Waits

__all__ = ("S3Backend",)

logger = get_logger(__name__)

# The ETag of each state this process wrote, for the next state of the same task (see etags).
_etags = EtagMemory()


def _as_error_of(exc: S3Error | TransportError, method: str, key: str) -> S3Error | TransportError:
    """The same failure, told about the request the caller made rather than the probe's own.

    A wrong secret fails the conditional-write probe first; the user asked to store a result,
    so the error names that write (same class, code and hint), not a probe key.
    """
    if isinstance(exc, S3Error):
        return exc.replace(key=key, method=method)
    text = str(exc).replace(repr(exc.key), repr(key)).replace(f"S3 {exc.method} ", f"S3 {method} ", 1)
    return type(exc)(text, method=method, key=key)


_store_checked: set[int] = set()


def _check_store_at_start(sender: Any = None, **_: Any) -> None:
    """The store's first answers before the worker takes a task; a store that cannot work stops it.

    With ``conditional_writes=probe`` that is the conditional-write verdict kept in the bucket
    (its GET and one conditional PUT that confirms it; the probe where there is none), else one
    GET (``S3Backend.check_store``).

    Connected to ``worker_init`` (runs when this module was imported before the worker starts,
    e.g. by the app) and to ``worker_ready``, which Celery sends before its consumer handles
    the first message (the backend is usually first built for the start-up banner, after
    ``worker_init``). Runs once per process. A permanent failure (missing bucket, 401/403,
    TLS, unresolvable host) would lose the result of every task the worker takes and
    acknowledges, so the worker exits with code 1 after one line naming the fix, and the tasks
    stay queued. A transient one (the store down or slow for now) is a warning: it may be back
    by the first result, and the client retries.
    """
    app = getattr(sender, "app", None)
    if app is None or os.getpid() in _store_checked:
        return
    backend = app.backend
    if not isinstance(backend, S3Backend):
        return
    _store_checked.add(os.getpid())
    slash = raw_slash_warning(backend.url)
    if slash:
        logger.warning("s3result: %s", slash)
    error = backend.check_store(min(backend.settings.connect_timeout + backend.settings.read_timeout, 5.0))
    if error is None:
        return
    where = backend.settings.redacted_url()
    if is_permanent(error) or isinstance(error, ConfigError):  # a half-set key pair: no wait mends it
        logger.critical("s3result: result store not usable, worker not started: %s: %s", where, error)
        raise SystemExit(1)
    logger.warning("s3result: result store not reachable at worker start (%s), starting anyway: %s", where, error)


# The apps this process built an S3Backend for: a prefork parent checks them before it forks.
_apps: weakref.WeakSet[Any] = weakref.WeakSet()


def _check_before_fork(sender: Any = None, **_: Any) -> None:
    """The start check in a prefork worker's main process, before its first child is forked.

    ``worker_init`` comes before the backend is usually built (the start-up banner builds it),
    and ``worker_ready`` after the pool has forked its children: checked there, each child
    would take the conditional-write verdict again (and with ``worker_max_tasks_per_child=1``,
    once per task). Checked here, once, every child inherits it.
    """
    for app in list(_apps):
        _check_store_at_start(sender=SimpleNamespace(app=app))
        _retake_verdict(app)
        _renew_credentials(app)


def _renew_credentials(app: Any) -> None:
    """Credentials due for a refresh are refreshed here, once, not by every child forked next.

    The main process makes no request after its start check: hours later its credentials
    (an IAM role's, from IMDS or a container endpoint) are inside their refresh window, and
    with ``worker_max_tasks_per_child=1`` each child would fetch them again for its one task.
    """
    backend = app.backend
    if not isinstance(backend, S3Backend):
        return
    try:
        backend.client.renew_credentials()
    except Exception as exc:  # noqa: BLE001 - a child resolves them itself, and reports a failure
        logger.info("s3result: could not renew the credentials before forking a child: %s", exc)


# When the main process may next try a verdict the start check could not take, and how many
# tries failed: the pause after the n-th doubles from 1 s to a minute (the retry policy's ceiling).
_retake_at: float | None = None
_retake_failures = 0
_RETAKE_BACKOFF = Backoff(RetryConfig(base_delay=1.0, max_delay=60.0))


def _retake_verdict(app: Any) -> None:
    """Take the conditional-write verdict before this fork if the start check could not.

    A store down or slow while the worker starts (started at the same time by a compose file,
    say) leaves no verdict to inherit: every child would take it for itself, with
    ``worker_max_tasks_per_child=1`` a request or more per task (the probe's 7 where no verdict
    is stored yet), for the worker's whole life.
    Tried again before a later fork, one bounded GET first; the pause between tries doubles
    from 1 s to a minute, so a store that stays down costs the main process little.
    """
    global _retake_at, _retake_failures
    backend = app.backend
    if not isinstance(backend, S3Backend) or backend.settings.conditional_writes is not ConditionalWrites.PROBE:
        return
    now = time.monotonic()
    if known(backend.client) is not None:
        return
    if _retake_at is None:  # the start check has just failed: not again at once
        _retake_at = now + _RETAKE_BACKOFF.ceiling(_retake_failures + 1)
    if now < _retake_at:
        return
    error = backend.check_store(min(backend.settings.connect_timeout, 2.0))
    if error is None:
        return
    _retake_failures += 1
    pause = _RETAKE_BACKOFF.ceiling(_retake_failures + 1)
    _retake_at = time.monotonic() + pause
    logger.info(
        "s3result: conditional-write verdict still not taken (%s); children probe for themselves until "
        "it is, tried again before a fork in %gs",
        error,
        pause,
    )


signals.worker_init.connect(_check_store_at_start, weak=False, dispatch_uid="s3result-check-store-at-init")
signals.worker_before_create_process.connect(
    _check_before_fork, weak=False, dispatch_uid="s3result-check-store-before-fork"
)
signals.worker_ready.connect(_check_store_at_start, weak=False, dispatch_uid="s3result-check-store-at-ready")


class S3Backend(Waits, ChordMethods):
    """Celery results as S3 objects: ``<prefix>/celery-task-meta-<task id>``."""

    #: ``mget`` fetches many keys concurrently, so joins need no per-task polling loop.
    supports_native_join = True
    #: Objects hold arbitrary bytes, so compressed payloads round-trip unchanged.
    supports_result_compression = True
    #: S3 cannot expire single objects; use a lifecycle rule on the prefix instead.
    supports_autoexpire = False
    #: ``incr`` is a compare-and-swap counter object; used for chords only where the store
    #: passed the conditional-write probe (``native_chords``), else chord_unlock.
    implements_incr = True

    def __init__(self, url: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, url=url, **kwargs)
        try:
            self.settings: Settings = from_celery_conf(self.app.conf, url)
        except ConfigError as exc:
            raise ImproperlyConfigured(f"s3result result backend: {exc}") from exc
        _apps.add(self.app)
        self._init_chords(f"{self.settings.endpoint_url or self.settings.region} {self.settings.bucket}")

    @property
    def client(self) -> S3Client:
        """This process's client for these settings, shared by every backend instance (``clients``)."""
        return shared_client(self.settings)

    def _key(self, key: bytes | str) -> str:
        return self.settings.object_key(bytes_to_str(key))

    def _get_key_for(self, prefix: Any, id: Any, key: Any = "") -> Any:
        """Celery's key, with an id that UTF-8 cannot encode (a lone surrogate) as InvalidKey."""
        try:
            return super()._get_key_for(prefix, id, key)
        except UnicodeEncodeError as exc:
            raise InvalidKey(
                f"id {id!r} cannot be an S3 key: S3 keys are UTF-8 text and UTF-8 cannot encode it ({exc.reason})"
            ) from exc

    def get(self, key: bytes | str) -> bytes | None:
        """One GET; a missing key is None (no HEAD first)."""
        found = self.client.get_or_none(self._key(key))
        return None if found is None else found.body

    def mget(self, keys: list[bytes | str]) -> list[bytes | None]:
        """Concurrent GETs over the pool; None where a key is missing."""
        found = self.client.get_many([self._key(k) for k in keys])
        return [None if f is None else f.body for f in found]

    def set(self, key: bytes | str, value: bytes | str) -> None:
        """One PUT of the encoded value."""
        body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self._check_size(key, body)
        self.client.put(self._key(key), body, content_type=self._content_type())

    def _check_size(self, key: bytes | str, body: bytes) -> None:
        """Refuse a result over ``max_result_size`` before anything is sent (the store would take it)."""
        limit = self.settings.max_result_size
        if len(body) > limit:
            raise ResultTooLarge(
                f"result for {bytes_to_str(key)!r} is {len(body)} bytes, over max_result_size={limit}; "
                "return a reference to the data instead, or raise max_result_size"
            )

    def delete(self, key: bytes | str) -> None:
        """DELETE, idempotent: a missing key is fine."""
        self.client.delete(self._key(key))

    # -- conditional writes ------------------------------------------------------------------

    @property
    def conditional_support(self) -> Support:
        """Whether this store's conditional writes can be trusted (probed once per process)."""
        return support_for(self.client, self.settings.conditional_writes, self.settings.prefix)

    @property
    def native_chords(self) -> bool:
        """True when chords count parts with compare-and-swap instead of chord_unlock."""
        return self.conditional_support.ok

    def _store_result(
        self, task_id: Any, result: Any, state: str, traceback: Any = None, request: Any = None, **kwargs: Any
    ) -> Any:
        """One PUT in the common case, first state or later one; never replaces a SUCCESS."""
        key = self._key(self.get_key_for_task(task_id))
        try:
            support = self.conditional_support
        except (S3Error, TransportError) as exc:
            raise _as_error_of(exc, "PUT", key) from exc
        if not support.ok:
            stored = super()._store_result(task_id, result, state, traceback, request, **kwargs)
            self._notify_caller(task_id, state, None, request)
            return stored
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self._check_size(key, body)
        etag = self._write_state(key, body, final=state in states.READY_STATES)
        if state in states.READY_STATES:
            self._note_final_write(bytes_to_str(task_id), etag is not None)
        self._notify_caller(task_id, state, etag, request)  # stored first: the store stays the truth
        return result

    def _etag_slot(self, key: str) -> str:
        """The ETag memory's key: the same object key in another bucket is another object."""
        return f"{self.settings.base_url} {self.settings.bucket} {key}"

    def _write_state(self, key: str, body: bytes, final: bool = False) -> str | None:
        """``PUT If-Match`` with the ETag this process wrote last, else create, else read then replace.

        ``final`` (a ready state) is never remembered: whatever comes after it must read it first.
        Returns the ETag now stored (None if unknown).
        """
        slot = self._etag_slot(key)
        etag = self._put_state(key, body, slot)
        if etag is None or final:
            _etags.forget(slot)
        else:
            _etags.put(slot, etag)
        return etag

    def _put_state(self, key: str, body: bytes, slot: str) -> str | None:
        """Store ``body`` at ``key`` as the race-free rules say; the ETag now there, None if unknown."""
        client = self.client
        content_type = self._content_type()
        known = _etags.get(slot)
        if known is not None:
            try:
                return client.put(key, body, mode=PutMode.update(known), content_type=content_type)
            except (PreconditionFailed, Conflict, NotFound):
                pass  # written by someone else since, or forgotten: read what is there
        else:
            try:
                return client.put(key, body, mode=PutMode.CREATE, content_type=content_type)
            except AlreadyExists:
                pass

        def attempt(cas: Attempt) -> str | None:
            current = client.get_or_none(key)
            cas.read(None if current is None else current.etag)
            if current is None:  # forgotten in between: create again
                return client.put(key, body, mode=PutMode.CREATE, content_type=content_type)
            if current.body == body:
                return current.etag  # our own earlier attempt landed (its reply was lost), or the same state
            if self.decode_result(current.body).get("status") == states.SUCCESS:
                logger.debug("s3result: %s already holds SUCCESS; a later state is not stored", key)
                return None
            return client.put(key, body, mode=PutMode.update(current.etag), content_type=content_type)

        return compare_and_swap(key, attempt, deadline_s=self.cas_deadline, store_errors=False)

    def _content_type(self) -> str:
        return "application/octet-stream" if self.compression else str(self.content_type)

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        """Transient store failures only: what waiting longer can heal.

        A missing bucket, 401/403, TLS failures and names that do not resolve say False, so
        neither ``wait_for`` nor ``result_backend_always_retry`` spins on them.
        """
        if is_permanent(exc):
            return False
        return isinstance(exc, TransportError) or is_retryable(exc)

    def check_store(self, timeout: float = 5.0) -> BaseException | None:
        """The store's first answers, before any task is taken; the error, if any.

        The worker runs it at start-up (``worker_init``): a missing bucket, denied credentials
        or a web page on the endpoint are then one line before any task is taken, not a
        failure per task. With ``conditional_writes=probe`` it is the conditional-write verdict:
        the GET of the verdict stored in the bucket, confirmed by one conditional PUT (which a
        read-only key is refused), or the probe where there is none. It is taken here, in the
        main process before the pool forks, so every child inherits it. Otherwise one GET of a
        key that need not exist.
        """
        deadline = time.monotonic() + timeout
        try:
            mode = self.settings.conditional_writes
            if mode is ConditionalWrites.PROBE and known(self.client) is None:
                support_for(self.client, mode, self.settings.prefix, deadline, confirm=True)
            else:
                key = self._key(self.get_key_for_task("s3result-start-check"))
                self.client.get_or_none(key, deadline=deadline, attempts=1)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            return exc
        return None

    def as_uri(self, include_password: bool = False) -> str:
        """The URL with the secret masked (Celery's generic masking misses the userinfo form)."""
        if include_password:
            return str(self.url or self.settings.redacted_url())
        return self.settings.redacted_url()

    def __reduce__(self, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {}, url=self.url)
        return super().__reduce__(args, kwargs)
