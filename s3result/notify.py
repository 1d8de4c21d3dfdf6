"""Waking the caller: a tiny notification over the Celery broker; the store keeps the result.

A worker stores a ready state in S3 first, then publishes ``{"id", "state", "etag"}`` (never the
result) to the reply channel named by the task message's ``reply_to``, which Celery sets to the
sending thread's ``app.thread_oid``. The sending process listens on the ``reply_to`` of each of
its threads that sent a task (``sent_from``, called from ``on_task_call``), over one broker
connection per process and app, in one daemon thread (a greenlet under gevent or eventlet
monkey-patching). A notification only wakes a wait, which then reads the store: a lost one costs
a poll, never a wrong answer, and any process can still read any result.

Nothing piles up on the broker:

- Redis: ``PUBLISH`` / ``SUBSCRIBE`` on ``s3result.notify.<reply_to>``, through the redis client
  of kombu's Redis transport (its URL, options and ``global_keyprefix``). Redis keeps nothing:
  with nobody subscribed a notification is dropped, and a subscription ends with its connection.
- RabbitMQ (``amqp``): one auto-delete queue per listening process, with ``x-expires`` and
  ``x-message-ttl``, bound to the built-in ``amq.direct`` exchange once per ``reply_to``; a
  notification is published there without ``mandatory``, so with no queue bound it is dropped.
  The queue is not exclusive: a waiting thread binds its ``reply_to`` over a pooled connection
  while the listener consumes. Auto-delete removes it (and its bindings) when the listener's
  connection goes, SIGKILL included; ``x-expires`` removes one that never got a consumer.
- Any other transport (SQS, filesystem, memory...): no notifications; callers poll.
"""

from __future__ import annotations

import json
import os
import select
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from celery.utils.log import get_logger

from .s3.retry import Backoff, RetryConfig

__all__ = [
    "CHANNEL_PREFIX",
    "EXCHANGE",
    "Listener",
    "Watch",
    "broker_kind",
    "current_listener",
    "listener_for",
    "publish",
    "sent_from",
]

logger = get_logger(__name__)

#: Redis channel of a reply_to: ``s3result.notify.<reply_to>``.
CHANNEL_PREFIX = "s3result.notify."
#: RabbitMQ: the built-in direct exchange, present in every vhost and never deleted.
EXCHANGE = "amq.direct"
#: RabbitMQ: a listener's queue goes this long (ms) after its last consumer, and a notification
#: not consumed within the TTL is dropped.
QUEUE_EXPIRES_MS = 60_000
MESSAGE_TTL_MS = 60_000
#: How long a wait gives the listener to connect and subscribe before it polls without it.
SUBSCRIBE_TIMEOUT = 2.0
#: How long a wait lets a RabbitMQ bind wait for a pooled connection: a pool held elsewhere
#: (``broker_pool_limit`` reached) hands the bind to the listening thread instead.
BIND_WAIT = 0.25
#: The listener's reconnect pauses (the project's one retry policy): full jitter from 0.1 s,
#: doubling to 5 s while the broker stays away, and back to 0.1 s after a healthy connection.
RECONNECT = RetryConfig(base_delay=0.1, max_delay=5.0)
#: A connection that stayed up this long (s) was healthy: the next reconnect starts the back-off over.
HEALTHY_AFTER = 1.0
#: A poll may find a result before its notification comes (the worker publishes once its PUT
#: returns): trust in notifications is lost only if it has not come this long (s) after.
LATE_GRACE = 1.0
#: Results found by a poll whose notifications are awaited, at most (past it: trust is lost).
MAX_LATE = 1024
#: Reply channels one process listens on at most (one per thread that sent tasks).
MAX_SENDERS = 1024
#: Bytes of a notification at most (a real one is ~120; a task id fits an S3 key, under 1 KB):
#: anything longer is dropped unread.
MAX_NOTIFICATION = 2048
#: Failed ids a listener remembers (a chord's parts read again at once when one fails).
MAX_FAILURES = 4096
_FAILED = frozenset({"FAILURE", "REVOKED"})
_SUPPORTED = ("redis", "amqp")

_lock = threading.Lock()
_kinds: dict[tuple[int, str], str] = {}
_listeners: dict[tuple[int, str], Listener] = {}
_senders: dict[int, set[str]] = {}
_said: set[str] = set()
# Listeners of a parent process, kept (never closed: their sockets are the parent's) after a fork.
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _inherited.extend(_listeners.values())
    _listeners.clear()
    _senders.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _app_key(app: Any) -> tuple[int, str]:
    """An app and the broker it is configured with now (tests and tools point an app elsewhere)."""
    conf = app.conf
    return id(app), f"{conf.broker_read_url or conf.broker_url} {conf.broker_transport}"


def broker_kind(app: Any) -> str:
    """The broker's driver type (``redis``, ``amqp``, ``sqs``...), found once per app and broker."""
    key = _app_key(app)
    kind = _kinds.get(key)
    if kind is None:
        conn = app.connection_for_write()
        try:
            kind = str(getattr(conn.transport, "driver_type", "") or "")
        finally:
            conn.release()
        _kinds[key] = kind
    return kind


def say_once(kind: str) -> None:
    """One INFO line per process and broker kind: woken over the broker, or polling."""
    if kind in _said:
        return
    _said.add(kind)
    if kind in _SUPPORTED:
        logger.info("s3result: waiting callers are woken over the broker (%s); the store stays the result", kind)
    else:
        logger.info("s3result: no notifications over a %r broker: waiting callers poll the store", kind or "unknown")


def _payload(task_id: str, state: str, etag: str | None) -> str:
    return json.dumps({"id": task_id, "state": state, "etag": etag}, separators=(",", ":"))


def publish(app: Any, reply_to: str, task_id: str, state: str, etag: str | None) -> bool:
    """Tell ``reply_to`` that ``task_id`` reached ``state``; False where it was not sent.

    Never raises: the result is stored already, and the caller's polling finds it anyway.
    """
    try:
        kind = broker_kind(app)
        if kind == "redis":
            with app.pool.acquire(block=True, timeout=5) as conn:
                with conn.default_channel.conn_or_acquire() as client:
                    client.publish(CHANNEL_PREFIX + reply_to, _payload(task_id, state, etag))
            return True
        if kind == "amqp":
            with app.producer_pool.acquire(block=True, timeout=5) as producer:
                producer.publish(
                    _payload(task_id, state, etag),
                    exchange=EXCHANGE,
                    routing_key=reply_to,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=1,  # transient
                    expiration=MESSAGE_TTL_MS / 1000,
                    retry=False,
                    declare=None,
                )
            return True
    except Exception as exc:  # noqa: BLE001 - the caller polls; say why once per process
        if "publish" not in _said:
            _said.add("publish")
            logger.warning("s3result: could not notify the caller (it polls instead): %r", exc)
    return False


def sent_from(app: Any, reply_to: str) -> None:
    """Record a ``reply_to`` this process sends tasks with (called for every task sent).

    One per sending thread (Celery's ``thread_oid``); past ``MAX_SENDERS`` (a server that makes a
    thread per request), the tasks of new threads are not listened for: their waits poll.
    """
    senders = _senders.get(id(app))
    if senders is None:
        with _lock:
            senders = _senders.setdefault(id(app), set())
    if reply_to not in senders and len(senders) < MAX_SENDERS:
        senders.add(reply_to)


def listener_for(app: Any) -> Listener | None:
    """This process's listener for ``app``, started on first use; None when it cannot listen."""
    if not _senders.get(id(app)):
        return None  # this process sent nothing: nobody would notify it
    key = _app_key(app)
    listener = _listeners.get(key)
    if listener is not None:
        return listener
    kind = broker_kind(app)
    say_once(kind)
    if kind not in _SUPPORTED:
        return None
    with _lock:
        listener = _listeners.get(key)
        if listener is None:
            for old in [k for k in _listeners if k[0] == key[0]]:
                _listeners.pop(old).stop()  # the app was pointed at another broker
            listener = _listeners[key] = Listener(app, kind)
    return listener


def current_listener(app: Any) -> Listener | None:
    """The listener already running for ``app`` and its broker, if any (for tests and tools)."""
    return _listeners.get(_app_key(app))


class Watch:
    """One wait's interest in some task ids: notified ids collect here until taken.

    A notification for an id that woke this wait less than ``quiet`` seconds ago (the caller's
    poll interval) is held until then: a flood of repeated (or forged) notifications for one
    task costs at most one read per interval, never one read each.
    """

    __slots__ = ("epoch", "held", "ids", "listener", "notified", "quiet", "seen")

    def __init__(self, listener: Listener, ids: Iterable[str], quiet: float = 0.0) -> None:
        self.listener = listener
        self.ids = list(ids)
        self.notified: set[str] = set()
        self.seen: set[str] = set()
        self.held: dict[str, float] = {}
        self.quiet = max(float(quiet), 0.0)
        self.epoch = listener.epoch

    def reliable(self) -> bool:
        """True when polling may slow down: connected, subscribed, and notifications arrive."""
        return self.listener.reliable()

    def wait(self, timeout: float) -> tuple[set[str], bool]:
        """Block up to ``timeout``: (the ids notified since the last call, whether to read all again)."""
        return self.listener.wait(self, timeout)

    def found_by_poll(self, task_id: str) -> None:
        """A poll found ``task_id`` ready with no notification yet: unless it comes soon, stop
        trusting them (a late one is no lost one: polling fast again would only race it)."""
        if task_id not in self.seen and task_id not in self.notified:
            self.listener.late(task_id)

    def close(self) -> None:
        """The wait is over: its ids are no longer listened for."""
        self.listener.unwatch(self)

    def _take(self, now: float) -> set[str]:
        """The notified ids not held (listener's lock held); each is then held for ``quiet``."""
        due = {i for i in self.notified if self.held.get(i, 0.0) <= now}
        if due:
            self.notified -= due
            self.seen |= due
            for task_id in due:
                self.held[task_id] = now + self.quiet
        return due

    def _next_release(self, default: float) -> float:
        """When the first held notification may wake this wait (listener's lock held)."""
        return min((self.held.get(i, 0.0) for i in self.notified), default=default)


class Listener:
    """One broker connection per process and app that turns notifications into wake-ups."""

    def __init__(self, app: Any, kind: str) -> None:
        self.app = app
        self.kind = kind
        self.epoch = 0
        #: Whether the last wait that ended was ended by a notification (polls slow down).
        self.trusted = False
        self._cond = threading.Condition()
        self._watches: dict[str, list[Watch]] = {}
        self._wanted: set[str] = set()
        self._confirmed: set[str] = set()
        #: RabbitMQ binds a wait could not make (no pooled connection): the listening thread
        #: makes them; meanwhile waits poll rather than wait for them.
        self._stalled: set[str] = set()
        self._connected = False
        self._stopped = False
        #: Notifications that woke a wait of this process (a count, for tests and tools).
        self.delivered = 0
        self._failed = False
        self._awaiting: set[str] | None = None
        self._queue = f"s3result.notify.{uuid.uuid4().hex}"
        self._wake_r = self._wake_w = -1  # a pipe that wakes the Redis thread, made with it
        self._thread: threading.Thread | None = None
        self._ups = 0
        #: Ids found ready by a poll before their notification, and until when it may still come.
        self._late: dict[str, float] = {}
        #: Times trust was lost: a notification did not come (a count, for tests and tools).
        self.distrusted = 0
        #: Ids lately notified failed, waited on or not (a chord's parts): the check of a body's
        #: parents reads them again at once instead of trusting a pending answer it read before.
        self._failures: OrderedDict[str, None] = OrderedDict()
        self.backoff = Backoff(RECONNECT, sleep=self._nap)

    def start(self) -> None:
        """Start the listening thread (once; the first ``watch`` does)."""
        if self._thread is None:
            with self._cond:
                if self._thread is None:
                    self._wake_r, self._wake_w = os.pipe()
                    os.set_blocking(self._wake_r, False)
                    self._thread = threading.Thread(target=self._run, name="s3result-notify", daemon=True)
                    self._thread.start()

    def _wake(self) -> None:
        """Interrupt the Redis thread's wait on its socket (to subscribe, or to stop)."""
        try:
            os.write(self._wake_w, b"w")
        except OSError:  # not started, or stopped and closed
            pass

    # -- the waiting side -------------------------------------------------------------------

    def watch(self, ids: Iterable[str], timeout: float = SUBSCRIBE_TIMEOUT, quiet: float = 0.0) -> Watch:
        """Register a wait on ``ids`` and make sure every sender of this process is listened to.

        Returns once subscribed, or after ``timeout`` (the wait then polls as without notifications):
        the caller reads the store only after this, so a result stored in between is not missed.
        A subscription that failed (the listener is down, or a bind is being retried) is not
        waited for: the wait polls until it is confirmed. ``quiet``: see ``Watch``.
        """
        self.start()
        w = Watch(self, ids, quiet)
        with self._cond:
            for task_id in w.ids:
                self._watches.setdefault(task_id, []).append(w)
        senders = _senders.get(id(self.app), set())
        new = set(senders) - self._wanted if len(senders) > len(self._wanted) else set()
        if new:
            with self._cond:
                self._wanted |= new
                self._cond.notify_all()  # a Redis thread that had nothing to subscribe to yet
        deadline = time.monotonic() + (0.0 if self._failed else timeout)  # down: do not wait
        if new:
            if self.kind == "amqp":
                self._bind(new, deadline)
            else:
                self._wake()
        with self._cond:
            self._cond.wait_for(
                lambda: self._failed or self._wanted - self._stalled <= self._confirmed,
                max(0.0, deadline - time.monotonic()),
            )
            w.epoch = self.epoch
        return w

    def stop(self) -> None:
        """End the listening thread; its connection closes (and, on RabbitMQ, its queue goes)."""
        self._stopped = True
        self._wake()
        with self._cond:
            self._cond.notify_all()
        for key, listener in list(_listeners.items()):
            if listener is self:
                _listeners.pop(key, None)

    def unwatch(self, w: Watch) -> None:
        """Forget a wait that ended."""
        with self._cond:
            for task_id in w.ids:
                watches = self._watches.get(task_id)
                if watches is not None:
                    try:
                        watches.remove(w)
                    except ValueError:
                        pass
                    if not watches:
                        del self._watches[task_id]

    def reliable(self) -> bool:
        """Connected, every sending thread subscribed, the last ended wait was woken, and every
        result a poll found first had its notification within ``LATE_GRACE``."""
        if self._late:
            now = time.monotonic()
            with self._cond:
                if any(until <= now for until in self._late.values()):
                    self._late.clear()
                    self._distrust()
        return self._connected and self.trusted and self._wanted <= self._confirmed

    def late(self, task_id: str) -> None:
        """A poll found ``task_id`` ready before its notification: trust holds if it comes soon."""
        with self._cond:
            if len(self._late) >= MAX_LATE:
                self._late.clear()
                self._distrust()
            self._late[task_id] = time.monotonic() + LATE_GRACE

    def _distrust(self) -> None:
        if self.trusted:
            self.trusted = False
            self.distrusted += 1

    def wait(self, w: Watch, timeout: float) -> tuple[set[str], bool]:
        """See ``Watch.wait``."""
        end = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                now = time.monotonic()
                notified = w._take(now)
                if notified or w.epoch != self.epoch or now >= end:
                    break
                self._cond.wait(max(0.0, min(end, w._next_release(end)) - now))
            again = w.epoch != self.epoch
            w.epoch = self.epoch
        if notified:
            self.trusted = True
        return notified, again

    def _bind(self, reply_tos: set[str], deadline: float) -> None:
        """RabbitMQ: bind this process's queue to each new ``reply_to`` (a pooled connection)."""
        with self._cond:
            self._cond.wait_for(lambda: self._connected, max(0.0, deadline - time.monotonic()))
            if not self._connected:
                return  # the listener binds everything wanted when it connects
        try:
            wait = max(0.05, min(BIND_WAIT, deadline - time.monotonic()))
            with self.app.pool.acquire(block=True, timeout=wait) as conn:
                channel = conn.default_channel
                for reply_to in reply_tos:
                    channel.queue_bind(queue=self._queue, exchange=EXCHANGE, routing_key=reply_to)
        except Exception as exc:  # noqa: BLE001 - the listening thread binds them; waits poll meanwhile
            logger.debug("s3result: binding the reply queue failed (the listener retries): %r", exc)
            with self._cond:
                self._stalled |= reply_tos - self._confirmed
                self._cond.notify_all()
            return
        with self._cond:
            self._confirm(reply_tos)

    # -- the listening thread ---------------------------------------------------------------

    def _deliver(self, data: Any) -> None:
        """Wake the waits on the notified id. Anyone who can publish on the broker can send
        anything here: a notification only names an id to read again, and one that is too
        long, nested or malformed is dropped (it must never cost the listener its connection)."""
        if not isinstance(data, (bytes, str)) or len(data) > MAX_NOTIFICATION:
            return
        try:
            note = json.loads(data)
            task_id = note["id"]
        except (ValueError, KeyError, TypeError, IndexError, RecursionError):
            return
        if not isinstance(task_id, str):
            return
        failed = isinstance(note, dict) and note.get("state") in _FAILED
        with self._cond:
            if failed:
                self._failures[task_id] = None
                if len(self._failures) > MAX_FAILURES:
                    self._failures.popitem(last=False)
            if self._late:
                self._late.pop(task_id, None)  # late, not lost
            watches = self._watches.get(task_id)
            if watches:
                self.delivered += 1
                fresh = False
                for w in watches:
                    if task_id not in w.notified:  # a repeat adds nothing: no wake-up for it
                        w.notified.add(task_id)
                        fresh = True
                if fresh:
                    self._cond.notify_all()

    def notified_failed(self, task_id: str) -> bool:
        """Whether ``task_id`` was lately notified as failed (a hint to read it: anyone may publish)."""
        with self._cond:
            return task_id in self._failures

    def _up(self, confirmed: set[str], awaiting: set[str]) -> None:
        """Connected (again). Once ``awaiting`` is confirmed every wait reads the store once more:
        notifications sent while the connection was down are lost."""
        with self._cond:
            self._connected = True
            self._failed = False
            self._ups += 1
            self._confirmed = set(confirmed)
            self._stalled -= self._confirmed
            self._awaiting = set(awaiting)
            self._confirm(set())

    def _confirm(self, reply_tos: set[str]) -> None:
        """Record subscriptions the broker confirmed (``self._cond`` held)."""
        self._confirmed |= reply_tos
        if self._awaiting is not None and self._awaiting <= self._confirmed:
            self._awaiting = None
            self.epoch += 1
        self._cond.notify_all()

    def _down(self, exc: BaseException) -> None:
        with self._cond:
            if self._connected:
                logger.warning("s3result: notification listener lost the broker (waits poll): %r", exc)
            self._connected = False
            self._failed = True
            self._confirmed = set()
            self._cond.notify_all()

    def _run(self) -> None:
        attempt = 0
        while not self._stopped:
            ups, began = self._ups, time.monotonic()
            try:
                if self.kind == "redis":
                    self._run_redis()
                else:
                    self._run_amqp()
            except Exception as exc:  # noqa: BLE001 - reconnect; waits poll meanwhile
                self._down(exc)
            # A connection that came up and stayed up was healthy: start the back-off over.
            healthy = self._ups != ups and time.monotonic() - began >= HEALTHY_AFTER
            attempt = 1 if healthy else attempt + 1
            if not self._stopped:
                self.backoff.wait(attempt)
        # The pipe stays open: a late _wake() must never write into a file that reused its number.

    def _nap(self, pause: float) -> None:
        """The back-off's pause, cut short by ``stop()``."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopped, pause)

    def _run_redis(self) -> None:
        with self._cond:
            # A SUBSCRIBE of no channel is an error: connect once there is something to hear.
            self._cond.wait_for(lambda: bool(self._wanted) or self._stopped)
        if self._stopped:
            return
        conn = self.app.connection_for_read()
        try:
            with conn.default_channel.conn_or_acquire() as client:
                pubsub = client.pubsub()
            try:
                with self._cond:
                    subscribed = set(self._wanted)
                pubsub.subscribe(*[CHANNEL_PREFIX + r for r in subscribed])
                self._up(set(), subscribed)
                # redis-py's private name: it has no public accessor of a connection's socket, and the
                # loop needs it to select() on with the wake-up pipe and to see redis-py reconnect by
                # itself. tests/test_layering.py fails if Connection stops having ``_sock``.
                sock = pubsub.connection._sock
                while not self._stopped:
                    while True:
                        message = pubsub.get_message(timeout=0)
                        if message is None:
                            break
                        self._on_redis(message)
                    with self._cond:
                        new = self._wanted - subscribed
                    if new:
                        pubsub.subscribe(*[CHANNEL_PREFIX + r for r in new])
                        subscribed |= new
                    if pubsub.connection is None or pubsub.connection._sock is not sock:
                        # redis-py reconnected by itself (its retries) and subscribes again:
                        # notifications may have been lost meanwhile.
                        sock = pubsub.connection._sock if pubsub.connection is not None else None
                        self._up(set(), subscribed)
                    readable, _, _ = select.select([sock, self._wake_r], [], [], 5.0)
                    if self._wake_r in readable:
                        try:
                            os.read(self._wake_r, 4096)
                        except BlockingIOError:
                            pass
                    if not readable:
                        pubsub.ping()  # a dead connection shows itself
            finally:
                pubsub.close()
        finally:
            conn.release()

    def _on_redis(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "message":
            self._deliver(message.get("data"))
        elif kind == "subscribe":
            name = message.get("channel")
            name = name.decode() if isinstance(name, bytes) else str(name)
            with self._cond:
                self._confirm({name[name.find(CHANNEL_PREFIX) + len(CHANNEL_PREFIX) :]})

    def _run_amqp(self) -> None:
        conn = self.app.connection_for_read()
        try:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            channel.queue_declare(
                queue=self._queue,
                durable=False,
                exclusive=False,
                auto_delete=True,
                arguments={"x-expires": QUEUE_EXPIRES_MS, "x-message-ttl": MESSAGE_TTL_MS},
            )
            with self._cond:
                wanted = set(self._wanted)
            for reply_to in wanted:
                channel.queue_bind(queue=self._queue, exchange=EXCHANGE, routing_key=reply_to)
            channel.basic_consume(queue=self._queue, no_ack=True, callback=lambda message: self._deliver(message.body))
            self._up(wanted, wanted)
            while not self._stopped:
                try:
                    conn.drain_events(timeout=1.0)
                except TimeoutError:
                    conn.heartbeat_check()
                self._bind_stalled(channel)
        finally:
            try:
                conn.release()
            except Exception:  # noqa: BLE001, S110 - the connection is gone already
                pass

    def _bind_stalled(self, channel: Any) -> None:
        """Make the binds a wait could not make, on the listener's own channel (a failure here
        is the connection's: the listener reconnects, and binds everything wanted)."""
        with self._cond:
            stalled = self._stalled - self._confirmed
        if not stalled:
            return
        for reply_to in stalled:
            channel.queue_bind(queue=self._queue, exchange=EXCHANGE, routing_key=reply_to)
        with self._cond:
            self._stalled -= stalled
            self._confirm(stalled)
