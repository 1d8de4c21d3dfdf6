"""Waiting for results: ``get()``, joins and ``iter_native`` are woken, and poll the store behind.

``Waiter`` does the waiting ``S3Backend`` hands it (in place of Celery's own ``wait_for`` /
``get_many`` / ``iter_native``). Where the broker carries notifications (``notify``), a wait
listens before its first read, then reads what a notification says is ready. Polling goes on
behind, as the safety net: every poll is one GET of one attempt, bounded by the time left before
the caller's timeout, every ``interval`` while notifications arrive, else on the schedule of
``polling``. Celery's ``AsyncBackendMixin`` delivers the result carried by a message; here the
message carries no result, and the store is read once it comes, so the wait loop stays this one,
for every broker.

The worker's half is here too: ``sent_from`` records the sending thread's ``reply_to`` and
``notify_caller`` publishes after the store write (see ``notify``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from celery import states
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import ResultSet
from celery.utils.log import get_logger
from kombu.utils.encoding import bytes_to_str

from ..results.store import ResultStore, is_transient
from . import notify
from .polling import Deadline, delays
from .readahead import ReadAhead

__all__ = ["Waiter"]

logger = get_logger(__name__)


def _timed_out(text: str, failing: BaseException | None) -> str:
    """Celery's timeout message, plus the store's last error when the store was failing.

    The error names the endpoint and the cause ("S3 GET '...' to http://127.0.0.1:9999: cannot
    connect ([Errno 111] Connection refused)"): a wrong port or a store that is down is then
    told apart from a task that is still running. It is also the exception's ``__cause__``.
    """
    if failing is None:
        return text
    return f"{text} The store was failing: {' '.join(str(failing).split())}"


def _checks_parents(on_interval: Any) -> bool:
    """Whether a wait's ``on_interval`` does something: ``AsyncResult.get`` always passes a vine
    ``promise``, empty (no ``fun``) unless the result has parents to check (a chord's body, a
    chain's last task) or the caller gave its own. Only such a wait is woken by a failure of
    another task (the failed part is read at once): an empty check has nothing to find."""
    return on_interval is not None and getattr(on_interval, "fun", on_interval) is not None


class Waiter:
    """Waits on one store for one Celery app: ``wait_for``, ``get_many`` and ``iter_native``.

    ``cache``: Celery's cache of ready results (the backend's); ``to_results``: Celery's decoding
    of a round of reads into ready metas (``_mget_to_results``); ``read_ahead``: the header ids
    the producer sent, read together in the check of a body's parents (``readahead``).
    """

    def __init__(
        self,
        store: ResultStore,
        app: Any,
        *,
        cache: MutableMapping[Any, Any],
        to_results: Callable[[list[bytes | None], list[str], frozenset[str]], dict[str, Any]],
        read_ahead: ReadAhead,
    ) -> None:
        self.store = store
        self.settings = store.settings
        self.app = app
        self._cache = cache
        self._to_results = to_results
        self.read_ahead = read_ahead
        # Set while this thread runs Celery's check of a waited result's parents (``on_interval`` in
        # ``wait_for``): only those reads are answered by the read-ahead. Any other read of a header
        # result (``AsyncResult.state``, ``ready()``) is one GET of the store, as always.
        self._checking = threading.local()

    def wait_for(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_interval: Any = None,
    ) -> Any:
        """Wait until the task is ready: woken by its notification, polling behind it.

        Where the broker carries notifications (``notify``), the wait listens before its first
        read, then reads again when the worker says the task is ready; polling goes on behind it,
        every ``interval`` while notifications arrive, else soon at first, backing off to
        ``interval`` (as without notifications).

        Each poll is one GET bounded by the time left before ``timeout``, so
        ``get(timeout=T)`` raises Celery's ``TimeoutError`` on time whether the store is up,
        down or silent. What can heal (refused or reset connections, timeouts, 5xx,
        throttling) is "not ready yet"; what cannot (a missing bucket, 401/403, TLS, a name
        that does not resolve) is raised at once. When the result is a failure,
        ``on_interval`` runs first: ``AsyncResult.get`` passes the check of the result's
        parents there, so a failed parent's own error wins over a chord body's
        ``ChordError``, as with Celery's other backends.
        """
        deadline = Deadline(timeout)
        interval = 0.5 if interval is None else interval
        fast, slow = delays(self.settings.poll_initial_delay, interval), delays(None, interval)
        watch = self._watch([task_id], deadline, interval, failures=_checks_parents(on_interval))
        failing: BaseException | None = None
        polls = 0
        try:
            while True:
                try:
                    meta = self._get_meta_once(task_id, deadline.at)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    if failing is None:
                        logger.warning("s3result: store unavailable while waiting for %s: %s", task_id, exc)
                    failing = exc
                else:
                    if meta["status"] in states.READY_STATES:
                        if watch is not None and polls:
                            watch.found_by_poll(task_id)
                        if on_interval and meta["status"] in states.PROPAGATE_STATES:
                            self.read_ahead.forget_pending()  # the parents' errors, read now
                            self._check_parents(on_interval)
                        return meta
                    failing = None
                if on_interval:
                    self._check_parents(on_interval)
                if deadline.passed():
                    raise CeleryTimeout(_timed_out("The operation timed out.", failing)) from failing
                polls += 1
                self._pause(watch, deadline, next(slow) if watch is not None and watch.reliable() else next(fast))
        finally:
            if watch is not None:
                watch.close()

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

        Each round GETs only the results still missing (see ``_join_round``), concurrently, one
        attempt each, bounded by the time left, on ``wait_for``'s schedule: a join of 100
        five-second tasks costs about 2 x 100 + 15 GETs, not 100 per round. A GET that fails
        transiently leaves its result for the next round; a permanent error is raised.
        """
        # In the group's order when the caller keeps it (``iter_native``): the sentinel below is
        # the last member still missing, the one a worker is likely to finish last.
        ids = dict.fromkeys(task_ids)
        yield from self._take_cached(ids, READY_STATES)
        cache = self._cache
        deadline = Deadline(timeout)
        interval = 0.5 if interval is None else interval
        fast, slow = delays(self.settings.poll_initial_delay, interval), delays(None, interval)
        watch = self._watch([bytes_to_str(k) for k in ids], deadline, interval) if ids else None
        notified: set[str] = set()
        sentinel: str | None = None
        again, iterations = False, 0
        try:
            while ids:
                ready, failing = self._join_round(ids, notified, again, sentinel, READY_STATES, deadline)
                cache.update(ready)
                for k in ready:
                    ids.pop(bytes_to_str(k), None)
                    ids.pop(k, None)
                    if watch is not None and iterations and bytes_to_str(k) not in notified:
                        watch.found_by_poll(bytes_to_str(k))
                for key, value in ready.items():
                    if on_message is not None:
                        on_message(value)
                    yield bytes_to_str(key), value
                if not ids:
                    break
                if sentinel not in ids:
                    sentinel = next(reversed(ids))
                if deadline.passed():
                    raise CeleryTimeout(_timed_out(f"Operation timed out ({timeout})", failing)) from failing
                if on_interval:
                    on_interval()
                wait = next(slow) if watch is not None and watch.reliable() else next(fast)
                notified, again = self._pause(watch, deadline, wait)
                iterations += 1
                if max_iterations and iterations >= max_iterations:
                    break
        finally:
            if watch is not None:
                watch.close()

    def _take_cached(self, ids: dict[Any, None], ready_states: frozenset[str]) -> Iterator[tuple[str, Any]]:
        """The results this process has cached already, taken out of ``ids``."""
        for task_id in list(ids):
            cached = self._cache.get(task_id)
            if cached is not None and cached["status"] in ready_states:
                del ids[task_id]
                yield bytes_to_str(task_id), cached

    def _join_round(
        self,
        ids: dict[Any, None],
        notified: set[str],
        again: bool,
        sentinel: str | None,
        ready_states: frozenset[str],
        deadline: Deadline,
    ) -> tuple[dict[str, Any], BaseException | None]:
        """One round of a join: what a notification said is ready, else the sentinel, else all.

        Woken, it reads what the workers said is ready and nothing else. Later rounds read one
        missing result first: a join needs them all, and results of one group tend to be ready
        together, so the others are read (at once, concurrently) only when it is. The sentinel
        is the last member still missing: workers take a group's tasks in order. After a
        reconnect (``again``) every missing result is read. The error is this round's only.
        """
        told = [k for k in ids if bytes_to_str(k) in notified]
        if told and not again:
            return self._read_ready(told, ready_states, deadline, None)
        if sentinel is not None and sentinel in ids and len(ids) > 1 and not again:
            ready, failing = self._read_ready([sentinel], ready_states, deadline, None)
            if sentinel in ready:
                rest, failing = self._read_ready([k for k in ids if k != sentinel], ready_states, deadline, failing)
                ready.update(rest)
            return ready, failing
        return self._read_ready(list(ids), ready_states, deadline, None)

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
        found = self.store.client.get_each([self.store.task_key(k) for k in keys], deadline=deadline.at, attempts=1)
        values: list[bytes | None] = []
        for item in found:
            if isinstance(item, Exception):
                if not is_transient(item):
                    raise item
                if failing is None:
                    logger.warning("s3result: store unavailable while joining %d results: %s", len(keys), item)
                failing = item
                values.append(None)
            else:
                values.append(None if item is None else item.body)
        ready: dict[str, Any] = self._to_results(values, keys, ready_states)
        return ready, failing

    def _check_parents(self, on_interval: Callable[[], Any]) -> None:
        """Celery's check of the waited result's parents, its header reads answered by the read-ahead."""
        self._checking.on = True
        try:
            on_interval()
        finally:
            self._checking.on = False

    def task_meta(self, task_id: Any) -> Any:
        """One result's meta (Celery's ``_get_task_meta_for``); a chord header's is read with the
        next ones of its header (``readahead``): in a check of a body's parents, or in a pass over
        the header."""
        task_id = bytes_to_str(task_id)
        if not getattr(self._checking, "on", False):
            return self.read_ahead.in_pass(
                task_id, self.store.meta, self._read_header, lambda other: other in self._cache
            )
        meta = self.read_ahead.take(task_id)
        if meta is not None:
            if meta["status"] != states.PENDING or not self._notified_failed(task_id):
                return meta
            return self.store.meta(task_id)
        ids = self.read_ahead.window(task_id, skip=lambda other: other in self._cache)
        if len(ids) > 1:
            self.read_ahead.keep(self._read_header(ids))
            meta = self.read_ahead.take(task_id)
            if meta is not None:
                return meta
        return self.store.meta(task_id)

    def _read_header(self, ids: list[str]) -> dict[str, Any]:
        """Header results read concurrently: meta by task id, less those whose read failed."""
        found = self.store.client.get_each([self.store.task_key(i) for i in ids])
        return {
            i: {"status": states.PENDING, "result": None} if item is None else self.store.decode(item.body)
            for i, item in zip(ids, found, strict=True)
            if not isinstance(item, Exception) and (item is None or item.body)
        }

    def _notified_failed(self, task_id: str) -> bool:
        """A notification said ``task_id`` failed since it was read as pending: read it again."""
        listener = notify.current_listener(self.app)
        return listener is not None and listener.notified_failed(task_id)

    def _get_meta_once(self, task_id: str, deadline: float | None = None) -> Any:
        """One poll: one GET, one attempt, bounded by ``deadline`` (``time.monotonic()``).

        Neither Celery's retry loop (``result_backend_always_retry``) nor the client's retry
        budget runs inside a poll: the polling loop is the retry, and it has the deadline.
        """
        cached = self._cache.get(task_id)
        if cached is not None:
            return cached
        found = self.store.client.get_or_none(self.store.task_key(task_id), deadline=deadline, attempts=1)
        if found is None or not found.body:
            return {"status": states.PENDING, "result": None}
        meta = self.store.decode(found.body)
        if meta.get("status") == states.SUCCESS:
            self._cache[task_id] = meta
        return meta

    def _watch(
        self, ids: list[str], deadline: Deadline, interval: float, failures: bool = False
    ) -> notify.Watch | None:
        """Listen for the notifications of ``ids`` before the first read; None without them.

        A task's repeated notifications wake the wait at most once per ``interval``; so does a
        failure of any task of this process, with ``failures`` (see ``notify.Watch``).
        """
        if not self.settings.notify or self.app.current_worker_task is not None:
            return None  # a wait inside a task (e.g. a chord's join, all ready) polls: no listener in workers
        try:
            listener = notify.listener_for(self.app)
            if listener is None:
                return None
            left = deadline.remaining()
            return listener.watch(
                ids,
                notify.SUBSCRIBE_TIMEOUT if left is None else min(left, notify.SUBSCRIBE_TIMEOUT),
                interval,
                failures,
            )
        except Exception as exc:  # noqa: BLE001 - waits poll without notifications
            logger.debug("s3result: waiting without notifications: %r", exc)
            return None

    @staticmethod
    def _pause(watch: notify.Watch | None, deadline: Deadline, wait: float) -> tuple[set[str], bool]:
        """Until the next poll, a notification or the deadline: (ids notified, read all again)."""
        if watch is None:
            deadline.nap(wait)
            return set(), False
        left = deadline.remaining()
        return watch.wait(wait if left is None else max(0.0, min(wait, left)))

    def sent_from(self) -> None:
        """A task is about to be sent from this thread: its ``reply_to`` is worth listening to."""
        if self.settings.notify:
            notify.sent_from(self.app, self.app.thread_oid)

    def notify_caller(self, task_id: Any, state: str, etag: str | None, request: Any) -> None:
        """After a ready state is stored: wake the process that sent the task (see ``notify``)."""
        if not self.settings.notify or state not in states.READY_STATES:
            return
        reply_to = getattr(request, "reply_to", None) if request is not None else None
        if reply_to:
            notify.publish(self.app, str(reply_to), bytes_to_str(task_id), state, etag)
