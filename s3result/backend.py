"""S3Backend: a Celery result backend on S3 and S3-compatible stores, without boto.

A read is one GET (a 404 is "pending"); ``mget`` runs concurrently over the pool, so
``GroupResult.get()`` is one round of parallel GETs. Settings are read once, in ``__init__``,
through ``config.from_celery_conf``; a bad one becomes ``ImproperlyConfigured`` naming it.

Where the store honours conditional writes (probed once per process and bucket, see
``precondition``), a state write is one ``PUT If-None-Match: *``; only when the key exists
is it read, and replaced with ``PUT If-Match`` unless it already holds a SUCCESS. Chords then
count their parts in a compare-and-swap counter object (``chords``: the producer decides
native or ``chord_unlock`` once, each part counts once, the part that completes the count
publishes the callback). Elsewhere, Celery's read-then-write and ``chord_unlock`` are used.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from celery import signals, states
from celery.exceptions import ImproperlyConfigured
from celery.result import ResultSet
from celery.utils.log import get_logger
from kombu.utils.encoding import bytes_to_str

from ._forksafe import renew_locks_after_fork
from .chording import ChordMethods
from .client import S3Client
from .config import Settings, from_celery_conf
from .counter import cas_attempts
from .errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    InvalidKey,
    NotFound,
    PreconditionFailed,
    S3Error,
    TransportError,
)
from .etags import EtagMemory
from .polling import Deadline, delays
from .precondition import Support, support_for
from .retry import is_permanent, is_retryable

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


def _timed_out(text: str, failing: BaseException | None) -> str:
    """Celery's timeout message, plus the store's last error when the store was failing.

    The error names the endpoint and the cause ("S3 GET '...' to http://127.0.0.1:9999: cannot
    connect ([Errno 111] Connection refused)"): a wrong port or a store that is down is then
    told apart from a task that is still running. It is also the exception's ``__cause__``.
    """
    if failing is None:
        return text
    return f"{text} The store was failing: {' '.join(str(failing).split())}"


_store_checked: set[int] = set()


def _check_store_at_start(sender: Any = None, **_: Any) -> None:
    """One GET before the worker takes a task; a store that cannot work stops the worker.

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
    error = backend.check_store(min(backend.settings.connect_timeout + backend.settings.read_timeout, 5.0))
    if error is None:
        return
    where = backend.settings.redacted_url()
    if is_permanent(error):
        logger.critical("s3result: result store not usable, worker not started: %s: %s", where, error)
        raise SystemExit(1)
    logger.warning("s3result: result store not reachable at worker start (%s), starting anyway: %s", where, error)


signals.worker_init.connect(_check_store_at_start, weak=False, dispatch_uid="s3result-check-store-at-init")
signals.worker_ready.connect(_check_store_at_start, weak=False, dispatch_uid="s3result-check-store-at-ready")


class S3Backend(ChordMethods):
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
        self._client: S3Client | None = None
        self._client_lock = threading.Lock()
        renew_locks_after_fork(self, "_client_lock")
        self._init_chords(f"{self.settings.endpoint_url or self.settings.region} {self.settings.bucket}")

    @property
    def client(self) -> S3Client:
        """The S3 client, made on first use; it keeps one connection pool per process."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = S3Client(self.settings)
                client = self._client
        return client

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
        self.client.put(self._key(key), body, content_type=self._content_type())

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
            return super()._store_result(task_id, result, state, traceback, request, **kwargs)
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self._write_state(key, body, final=state in states.READY_STATES)
        return result

    def _etag_slot(self, key: str) -> str:
        """The ETag memory's key: the same object key in another bucket is another object."""
        return f"{self.settings.base_url} {self.settings.bucket} {key}"

    def _write_state(self, key: str, body: bytes, final: bool = False) -> None:
        """``PUT If-Match`` with the ETag this process wrote last, else create, else read then replace.

        ``final`` (a ready state) is never remembered: whatever comes after it must read it first.
        """
        slot = self._etag_slot(key)
        etag = self._put_state(key, body, slot)
        if etag is None or final:
            _etags.forget(slot)
        else:
            _etags.put(slot, etag)

    def _put_state(self, key: str, body: bytes, slot: str) -> str | None:
        """Store ``body`` at ``key`` as the race-free rules say; the ETag now there, None if unknown."""
        client = self.client
        content_type = self._content_type()
        known = _etags.get(slot)
        if known is not None:
            try:
                return client.put(key, body, if_match=known, content_type=content_type)
            except (PreconditionFailed, Conflict, NotFound):
                pass  # written by someone else since, or forgotten: read what is there
        else:
            try:
                return client.put(key, body, if_none_match=True, content_type=content_type)
            except AlreadyExists:
                pass
        for _attempt in cas_attempts(key, self.cas_deadline):
            current = client.get_or_none(key)
            try:
                if current is None:  # forgotten in between: create again
                    return client.put(key, body, if_none_match=True, content_type=content_type)
                if current.body == body:
                    return current.etag  # our own earlier attempt landed (its reply was lost), or the same state
                if self.decode_result(current.body).get("status") == states.SUCCESS:
                    logger.debug("s3result: %s already holds SUCCESS; a later state is not stored", key)
                    return None
                return client.put(key, body, if_match=current.etag, content_type=content_type)
            except (PreconditionFailed, Conflict):
                continue
        return None  # pragma: no cover - cas_attempts raises when its deadline passes

    def _content_type(self) -> str:
        return "application/octet-stream" if self.compression else str(self.content_type)

    def wait_for(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_interval: Any = None,
    ) -> Any:
        """Poll until the task is ready: soon at first, backing off to ``interval``.

        Each poll is one GET bounded by the time left before ``timeout``, so
        ``get(timeout=T)`` raises Celery's ``TimeoutError`` on time whether the store is up,
        down or silent. What can heal (refused or reset connections, timeouts, 5xx,
        throttling) is "not ready yet"; what cannot (a missing bucket, 401/403, TLS, a name
        that does not resolve) is raised at once. When the result is a failure,
        ``on_interval`` runs first: ``AsyncResult.get`` passes the check of the result's
        parents there, so a failed parent's own error wins over a chord body's
        ``ChordError``, as with Celery's other backends.
        """
        self._ensure_not_eager()
        deadline = Deadline(timeout)
        waits = delays(self.settings.poll_initial_delay, 0.5 if interval is None else interval)
        failing: BaseException | None = None
        while True:
            try:
                meta = self._get_meta_once(task_id, deadline.at)
            except Exception as exc:
                if not self.exception_safe_to_retry(exc):
                    raise
                if failing is None:
                    logger.warning("s3result: store unavailable while waiting for %s: %s", task_id, exc)
                failing = exc
            else:
                if meta["status"] in states.READY_STATES:
                    if on_interval and meta["status"] in states.PROPAGATE_STATES:
                        on_interval()
                    return meta
                failing = None
            if on_interval:
                on_interval()
            if deadline.passed():
                raise self.TimeoutError(_timed_out("The operation timed out.", failing)) from failing
            deadline.nap(next(waits))

    def get_many(
        self,
        task_ids: Any,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_message: Any = None,
        on_interval: Any = None,
        max_iterations: int | None = None,
        READY_STATES: frozenset[str] = states.READY_STATES,  # noqa: N803 - Celery's signature
    ) -> Iterator[tuple[str, Any]]:
        """Celery's join loop (``GroupResult.get()``, ``join_native``), with waits that hold.

        Each round GETs only the results still missing, concurrently, one attempt each and
        bounded by the time left; rounds follow the same schedule as ``wait_for``. After the
        first round, a round reads one missing result first and the others only once it is
        ready: a join of 100 five-second tasks then costs about 2 x 100 + 15 GETs, not 100
        per round. A GET that fails transiently leaves its result for the next round; a
        permanent error is raised.
        """
        # In the group's order when the caller keeps it (``iter_native``): the sentinel below is
        # the last member still missing, the one a worker is likely to finish last.
        ids = dict.fromkeys(task_ids)
        cache = self._cache
        for task_id in list(ids):
            cached = cache.get(task_id)
            if cached is not None and cached["status"] in READY_STATES:
                del ids[task_id]
                yield bytes_to_str(task_id), cached
        deadline = Deadline(timeout)
        waits = delays(self.settings.poll_initial_delay, 0.5 if interval is None else interval)
        iterations = 0
        failing: BaseException | None = None
        sentinel: str | None = None
        while ids:
            failing = None  # the last round's error only: a round the store answered clears it
            if sentinel is not None and sentinel in ids and len(ids) > 1:
                # Later rounds read one missing result first: a join needs them all, and
                # results of one group tend to be ready together, so the others are read
                # (at once, concurrently) only when it is. The sentinel is the last member
                # still missing: workers take a group's tasks in order.
                ready, failing = self._read_ready([sentinel], READY_STATES, deadline, failing)
                if sentinel in ready:
                    rest, failing = self._read_ready([k for k in ids if k != sentinel], READY_STATES, deadline, failing)
                    ready.update(rest)
            else:
                ready, failing = self._read_ready(list(ids), READY_STATES, deadline, failing)
            cache.update(ready)
            for k in ready:
                ids.pop(bytes_to_str(k), None)
                ids.pop(k, None)
            for key, value in ready.items():
                if on_message is not None:
                    on_message(value)
                yield bytes_to_str(key), value
            if not ids:
                break
            if sentinel not in ids:
                sentinel = next(reversed(ids))
            if deadline.passed():
                raise self.TimeoutError(_timed_out(f"Operation timed out ({timeout})", failing)) from failing
            if on_interval:
                on_interval()
            deadline.nap(next(waits))
            iterations += 1
            if max_iterations and iterations >= max_iterations:
                break

    def iter_native(
        self,
        result: Any,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_message: Any = None,
        on_interval: Any = None,
    ) -> Iterator[tuple[str, Any]]:
        """Celery's ``iter_native``, handing ``get_many`` the group's ids in the group's order."""
        self._ensure_not_eager()
        results = result.results
        if not results:
            return
        task_ids: list[str] = []
        for child in results:
            if isinstance(child, ResultSet):
                yield child.id, child.results
            else:
                task_ids.append(child.id)
        yield from self.get_many(
            task_ids, timeout=timeout, interval=interval, no_ack=no_ack, on_message=on_message, on_interval=on_interval
        )

    def _read_ready(
        self, keys: list[str], ready_states: frozenset[str], deadline: Deadline, failing: BaseException | None
    ) -> tuple[dict[str, Any], BaseException | None]:
        """One concurrent round of single-attempt GETs: the ready metas by task id.

        A transient failure leaves its result for the next round and is handed back as the
        last failure (the cause of a later timeout); a permanent one is raised.
        """
        found = self.client.get_each(
            [self._key(self.get_key_for_task(k)) for k in keys], deadline=deadline.at, attempts=1
        )
        values: list[bytes | None] = []
        for item in found:
            if isinstance(item, Exception):
                if not self.exception_safe_to_retry(item):
                    raise item
                if failing is None:
                    logger.warning("s3result: store unavailable while joining %d results: %s", len(keys), item)
                failing = item
                values.append(None)
            else:
                values.append(None if item is None else item.body)
        ready: dict[str, Any] = self._mget_to_results(values, keys, ready_states)
        return ready, failing

    def _get_meta_once(self, task_id: str, deadline: float | None = None) -> Any:
        """One poll: one GET, one attempt, bounded by ``deadline`` (``time.monotonic()``).

        Neither Celery's retry loop (``result_backend_always_retry``) nor the client's retry
        budget runs inside a poll: the polling loop is the retry, and it has the deadline.
        """
        cached = self._cache.get(task_id)
        if cached is not None:
            return cached
        found = self.client.get_or_none(self._key(self.get_key_for_task(task_id)), deadline=deadline, attempts=1)
        if found is None or not found.body:
            return {"status": states.PENDING, "result": None}
        meta = self.decode_result(found.body)
        if meta.get("status") == states.SUCCESS:
            self._cache[task_id] = meta
        return meta

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        """Transient store failures only: what waiting longer can heal.

        A missing bucket, 401/403, TLS failures and names that do not resolve say False, so
        neither ``wait_for`` nor ``result_backend_always_retry`` spins on them.
        """
        if is_permanent(exc):
            return False
        return isinstance(exc, TransportError) or is_retryable(exc)

    def check_store(self, timeout: float = 5.0) -> BaseException | None:
        """One GET of a key that need not exist; the error, if the store is not usable.

        The worker runs it at start-up (``worker_init``): a missing bucket or denied
        credentials are then one line before any task is taken, not a failure per task.
        """
        key = self._key(self.get_key_for_task("s3result-start-check"))
        try:
            self.client.get_or_none(key, deadline=time.monotonic() + timeout, attempts=1)
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
