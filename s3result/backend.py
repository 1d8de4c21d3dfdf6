"""S3Backend: a Celery result backend on S3 and S3-compatible stores, without boto.

``S3Backend`` is Celery's interface and nothing more: the methods Celery calls, each a short
delegation to one of three objects it builds in ``__init__``, each given what it needs there:

- ``store`` (``results.store.ResultStore``): keys, reads, race-free writes, the conditional-write
  verdict, ETag memory. A read is one GET (a 404 is "pending"); ``mget`` runs concurrently.
- ``waiter`` (``waits.waiter.Waiter``): ``wait_for``, ``get_many``, ``iter_native``, notifications and
  the read-ahead of a chord's header.
- ``chords`` (``chords.engine.ChordEngine``): apply, size, each part's count, the join, firing and
  clean-up; ``chord_unlock`` where the store cannot count.

Settings are read once, in ``__init__``, through ``config.from_celery_conf``; a bad one becomes
``ImproperlyConfigured`` naming it. The worker's start check is connected then too (``worker``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import states
from celery.backends.base import KeyValueStoreBackend
from celery.exceptions import ImproperlyConfigured
from celery.utils.log import get_logger
from kombu.utils.encoding import bytes_to_str

from . import worker
from .chords.engine import ChordEngine
from .errors import ConfigError, InvalidKey, S3Error, TransportError
from .results.clients import shared_client
from .results.config import Settings, from_celery_conf
from .results.precondition import Support
from .results.store import ResultStore, as_error_of, is_transient
from .s3.client import S3Client
from .waits.readahead import ReadAhead
from .waits.waiter import Waiter

__all__ = ("S3Backend",)

logger = get_logger(__name__)


class _Knob:
    """A chord or write knob: a class-wide default (``S3Backend.chord_lease = 5`` before the backend
    is built, as the docs show), and on a built backend the value of the part that uses it, so
    ``backend.cas_deadline = 0.5`` takes effect instead of being dropped on an unused attribute."""

    def __init__(self, default: Any, read: Callable[[Any], Any], write: Callable[[Any, Any], None]) -> None:
        self.default, self._read, self._write = default, read, write

    def __get__(self, backend: Any, owner: Any = None) -> Any:
        return self.default if backend is None else self._read(backend)

    def __set__(self, backend: Any, value: Any) -> None:
        self._write(backend, value)


class S3Backend(KeyValueStoreBackend):
    """Celery results as S3 objects: ``<prefix>/celery-task-meta-<task id>``."""

    #: ``mget`` fetches many keys concurrently, so joins need no per-task polling loop.
    supports_native_join = True
    #: Objects hold arbitrary bytes, so compressed payloads round-trip unchanged.
    supports_result_compression = True
    #: S3 cannot expire single objects; use a lifecycle rule on the prefix instead.
    supports_autoexpire = False
    #: False, although ``incr`` is provided (a compare-and-swap counter object): with True,
    #: Celery's chord code would count through it; chords count in ``chords.engine`` instead, natively
    #: where the store passed the conditional-write probe, else with chord_unlock.
    implements_incr = False

    #: How long a compare-and-swap may keep losing to other writers before giving up.
    cas_deadline = _Knob(120.0, lambda b: b.store.cas_deadline, lambda b, v: b._set_cas_deadline(v))
    #: How long the run of a chord part that completed the count owns the body's publishing;
    #: a redelivery of that same part takes over only after this (see ``chords.rootcounter``).
    chord_lease = _Knob(60.0, lambda b: b.chords.counter.lease_s, lambda b, v: setattr(b.chords.counter, "lease_s", v))
    #: Chords with at least this many parts (all plain tasks) count in a tree (``chords.tree``)
    #: shaped by ``Geometry.fit``; others (a header with a nested group) count in the root. A
    #: tree fitted to the size beats one counter at every size: at 10 parts on 24 processes,
    #: 5.6 requests per part against 6.8-7.2 in the root (without turns); at 32, 5.4-5.7 against
    #: 12.4 (``python -m benchmarks.chords --sizes 10,32 --modes native --tree-from T``).
    chord_tree_from = _Knob(2, lambda b: b.chords.tree_from, lambda b, v: setattr(b.chords, "tree_from", v))
    #: Whether the parts of a small chord take turns before storing their results, in a prefork
    #: pool or where the worker's counts saw races lately (``chords.turns``): fewer requests per
    #: part, for a wait of up to 1.2 s before a part's result is stored. False: no part waits.
    chord_turns = _Knob(True, lambda b: b.chords.turns.enabled, lambda b, v: setattr(b.chords.turns, "enabled", v))

    def __init__(self, url: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, url=url, **kwargs)
        try:
            self.settings: Settings = from_celery_conf(self.app.conf, url)
        except ConfigError as exc:
            raise ImproperlyConfigured(f"s3result result backend: {exc}") from exc
        content_type = "application/octet-stream" if self.compression else str(self.content_type)
        self.store = ResultStore(
            self.settings,
            task_key=self.get_key_for_task,
            decode=self.decode_result,
            content_type=content_type,
            clients=shared_client,
            cas_deadline=type(self).cas_deadline,
        )
        read_ahead = ReadAhead()
        self.waiter = Waiter(
            self.store, self.app, cache=self._cache, to_results=self._mget_to_results, read_ahead=read_ahead
        )
        self.chords = ChordEngine(
            self.store,
            self.app,
            celery=self,
            read_results=self.waiter.get_many,
            remember_header=read_ahead.remember,
            scope=self.settings.store_id,
            notify=self.waiter.notify_caller,
            cas_deadline=type(self).cas_deadline,
            lease=type(self).chord_lease,
            tree_from=type(self).chord_tree_from,
        )
        self.chords.turns.enabled, self.chords.turns.pooled = bool(type(self).chord_turns), worker.pooled
        self.chords.turns.idle_before, self.chords.turns.time_limited = worker.idle_before, worker.time_limited
        worker.connect(self.app, S3Backend)

    def _set_cas_deadline(self, seconds: float) -> None:
        self.store.cas_deadline = seconds
        self.chords.set_cas_deadline(seconds)

    @property
    def client(self) -> S3Client:
        """This process's client for these settings, shared by every backend instance (``clients``)."""
        return self.store.client

    def _get_key_for(self, prefix: Any, id: Any, key: Any = "") -> Any:
        """Celery's key, with an id that UTF-8 cannot encode (a lone surrogate) as InvalidKey."""
        try:
            return super()._get_key_for(prefix, id, key)
        except UnicodeEncodeError as exc:
            raise InvalidKey(
                f"id {id!r} cannot be an S3 key: S3 keys are UTF-8 text and UTF-8 cannot encode it ({exc.reason})"
            ) from exc

    # -- Celery's key-value interface -----------------------------------------------------------

    def get(self, key: bytes | str) -> bytes | None:
        """One GET; a missing key is None (no HEAD first)."""
        return self.store.get(key)

    def mget(self, keys: list[bytes | str]) -> list[bytes | None]:
        """Concurrent GETs over the pool; None where a key is missing."""
        return self.store.mget(keys)

    def set(self, key: bytes | str, value: bytes | str) -> None:
        """One PUT of the encoded value."""
        self.store.set(key, value)

    def delete(self, key: bytes | str) -> None:
        """DELETE, idempotent: a missing key is fine."""
        self.store.delete(key)

    def incr(self, key: bytes | str) -> int:
        """Add one to a counter object by compare-and-swap and return the new value (``counter``)."""
        return self.chords.incr(key)

    # -- storing results ------------------------------------------------------------------------

    @property
    def conditional_support(self) -> Support:
        """Whether this store's conditional writes can be trusted (probed once per process)."""
        return self.store.support

    @property
    def native_chords(self) -> bool:
        """True when chords count parts with compare-and-swap instead of chord_unlock."""
        return self.chords.native

    def _store_result(
        self, task_id: Any, result: Any, state: str, traceback: Any = None, request: Any = None, **kwargs: Any
    ) -> Any:
        """One PUT in the common case, first state or later one; never replaces a SUCCESS. A
        small chord's part may first wait its turn (``chords.turns``), before anything is stored."""
        key = self.store.task_key(task_id)
        try:
            support = self.store.support
        except (S3Error, TransportError) as exc:
            raise as_error_of(exc, "PUT", key) from exc
        if not support.ok:
            stored = super()._store_result(task_id, result, state, traceback, request, **kwargs)
            self.waiter.notify_caller(task_id, state, None, request)
            return stored
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self.store.check_size(key, body)
        if state == states.SUCCESS:
            self.chords.before_final_write(request)
        began = time.monotonic()
        etag = self.store.write_state(key, body, final=state in states.READY_STATES)
        if state in states.READY_STATES:
            self.chords.note_final_write(bytes_to_str(task_id), etag is not None, time.monotonic() - began)
        self.waiter.notify_caller(task_id, state, etag, request)  # stored first: the store stays the truth
        return result

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        """Transient store failures only: what waiting longer can heal (``store.is_transient``)."""
        return is_transient(exc)

    def check_store(self, timeout: float = 5.0) -> BaseException | None:
        """The store's first answers, before any task is taken; the error, if any.

        The worker runs it at start-up (``worker``): a missing bucket, denied credentials or a
        web page on the endpoint are then one line before any task is taken, not a failure per
        task. It is taken in the main process before the pool forks, so every child inherits
        the conditional-write verdict (``ResultStore.check``).
        """
        return self.store.check(timeout)

    # -- waiting --------------------------------------------------------------------------------

    def wait_for(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_interval: Any = None,
    ) -> Any:
        """Woken by the task's notification, polling behind it (``Waiter.wait_for``)."""
        self._ensure_not_eager()
        return self.waiter.wait_for(task_id, timeout, interval, no_ack, on_interval)

    def get_many(self, task_ids: Any, *args: Any, **kwargs: Any) -> Any:
        """Celery's join loop, with waits that hold (``Waiter.get_many``)."""
        return self.waiter.get_many(task_ids, *args, **kwargs)

    def iter_native(self, result: Any, *args: Any, **kwargs: Any) -> Any:
        """The group's results as they are ready, in the group's order (``Waiter.iter_native``)."""
        self._ensure_not_eager()
        return self.waiter.iter_native(result, *args, **kwargs)

    def _get_task_meta_for(self, task_id: Any) -> Any:
        """One result's meta; a chord header's read with its neighbours in a check of a body's parents."""
        return self.waiter.task_meta(task_id)

    def on_task_call(self, producer: Any, task_id: Any) -> dict[str, Any]:
        """A task is about to be sent from this thread: its ``reply_to`` is worth listening to."""
        self.waiter.sent_from()
        return {}

    # -- chords ---------------------------------------------------------------------------------

    def apply_chord(self, header_result_args: Any, body: Any, **kwargs: Any) -> Any:
        """Decide native counting or chord_unlock once, and send the decision with the chord."""
        return self.chords.apply_chord(header_result_args, body, **kwargs)

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        """Record Celery's size of the chord (called before its last part is published)."""
        self.chords.set_chord_size(group_id, chord_size)

    def on_chord_part_return(self, request: Any, state: str, result: Any, **kwargs: Any) -> Any:
        """Count this part; the part that completes the count joins, fires and cleans up."""
        return self.chords.on_chord_part_return(request, state, result, **kwargs)

    # -- the URL --------------------------------------------------------------------------------

    def as_uri(self, include_password: bool = False) -> str:
        """The URL with the secret masked (Celery's generic masking misses the userinfo form)."""
        if include_password:
            return str(self.url or self.settings.redacted_url())
        return self.settings.redacted_url()

    def __reduce__(self, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {}, url=self.url)
        return super().__reduce__(args, kwargs)
