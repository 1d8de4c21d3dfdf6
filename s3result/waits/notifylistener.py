"""A process's listener: one broker connection per app that turns notifications into wake-ups.

Waits register the task ids they wait on (``Watch``); the listening thread (a greenlet under
gevent or eventlet monkey-patching) runs the broker's loop (``notifyredis``, ``notifyamqp``),
reconnecting with the project's one back-off while the broker is away, and ``deliver`` wakes
the waits a notification names. The listener also keeps the trust the callers' poll schedule
reads: connected, every sending thread subscribed, notifications arriving in time.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from celery.utils.log import get_logger

from ..s3.retry import Backoff, RetryConfig
from . import notifyregistry
from .notifyamqp import run_amqp
from .notifyformat import EXCHANGE, parse
from .notifyredis import run_redis
from .notifywatch import Watch

__all__ = [
    "BIND_WAIT",
    "HEALTHY_AFTER",
    "LATE_GRACE",
    "Listener",
    "MAX_FAILURES",
    "MAX_LATE",
    "RECONNECT",
    "SUBSCRIBE_TIMEOUT",
    "Watch",
]

# The notify module's logger: these lines are the notifications', whatever module says them.
logger = get_logger("s3result.waits.notify")

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
#: Failed ids a listener remembers (a chord's parts read again at once when one fails).
MAX_FAILURES = 4096


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
        self._failure_watches: list[Watch] = []  # woken by any failure (``Watch.failures``)
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
        #: RabbitMQ: this process's queue.
        self.queue = f"s3result.notify.{uuid.uuid4().hex}"
        #: A pipe that wakes the Redis thread, made with it: its reading end, and its writing end.
        self.wake_fd = self._wake_w = -1
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
                    self.wake_fd, self._wake_w = os.pipe()
                    os.set_blocking(self.wake_fd, False)
                    self._thread = threading.Thread(target=self._run, name="s3result-notify", daemon=True)
                    self._thread.start()

    def _wake(self) -> None:
        """Interrupt the Redis thread's wait on its socket (to subscribe, or to stop)."""
        try:
            os.write(self._wake_w, b"w")
        except OSError:  # not started, or stopped and closed
            pass

    # -- the waiting side -------------------------------------------------------------------

    def watch(
        self, ids: Iterable[str], timeout: float = SUBSCRIBE_TIMEOUT, quiet: float = 0.0, failures: bool = False
    ) -> Watch:
        """Register a wait on ``ids`` and make sure every sender of this process is listened to.

        Returns once subscribed, or after ``timeout`` (the wait then polls as without notifications):
        the caller reads the store only after this, so a result stored in between is not missed.
        A subscription that failed (the listener is down, or a bind is being retried) is not
        waited for: the wait polls until it is confirmed. ``quiet``, ``failures``: see ``Watch``.
        """
        self.start()
        w = Watch(self, ids, quiet, failures)
        with self._cond:
            for task_id in w.ids:
                self._watches.setdefault(task_id, []).append(w)
            if failures:
                self._failure_watches.append(w)
        senders = notifyregistry.senders(self.app)
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
        notifyregistry.forget(self)

    def unwatch(self, w: Watch) -> None:
        """Forget a wait that ended."""
        with self._cond:
            if w in self._failure_watches:
                self._failure_watches.remove(w)
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
                notified = w.take(now)
                if notified or w.epoch != self.epoch or now >= end:
                    break
                self._cond.wait(max(0.0, min(end, w.next_release(end)) - now))
            again = w.epoch != self.epoch
            w.epoch = self.epoch
        if notified - {""}:
            self.trusted = True
        return notified - {""}, again

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
                    channel.queue_bind(queue=self.queue, exchange=EXCHANGE, routing_key=reply_to)
        except Exception as exc:  # noqa: BLE001 - the listening thread binds them; waits poll meanwhile
            logger.debug("s3result: binding the reply queue failed (the listener retries): %r", exc)
            with self._cond:
                self._stalled |= reply_tos - self._confirmed
                self._cond.notify_all()
            return
        with self._cond:
            self.confirm(reply_tos)

    # -- the listening thread ---------------------------------------------------------------

    def deliver(self, data: Any) -> None:
        """Wake the waits on the notified id. Anyone who can publish on the broker can send
        anything here: a notification only names an id to read again, and one that is too
        long, nested or malformed is dropped (it must never cost the listener its connection)."""
        parsed = parse(data)
        if parsed is None:
            return
        task_id, failed = parsed
        with self._cond:
            if failed:
                self._failures[task_id] = None
                if len(self._failures) > MAX_FAILURES:
                    self._failures.popitem(last=False)
                for w in self._failure_watches:
                    if w.failed is None:
                        w.failed = w.held.get("", 0.0)
                        self._cond.notify_all()
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

    def up(self, confirmed: set[str], awaiting: set[str]) -> None:
        """Connected (again). Once ``awaiting`` is confirmed every wait reads the store once more:
        notifications sent while the connection was down are lost."""
        with self._cond:
            self._connected = True
            self._failed = False
            self._ups += 1
            self._confirmed = set(confirmed)
            self._stalled -= self._confirmed
            self._awaiting = set(awaiting)
            self.confirm(set())

    def confirm(self, reply_tos: set[str]) -> None:
        """Record subscriptions the broker confirmed."""
        with self._cond:  # a Condition's lock is re-entrant: callers may hold it already
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
                    run_redis(self)
                else:
                    run_amqp(self)
            except Exception as exc:  # noqa: BLE001 - reconnect; waits poll meanwhile
                self._down(exc)
            # A connection that came up and stayed up was healthy: start the back-off over.
            healthy = self._ups != ups and time.monotonic() - began >= HEALTHY_AFTER
            attempt = 1 if healthy else attempt + 1
            if not self._stopped:
                self.backoff.wait(attempt)
        # The pipe stays open: a late _wake() must never write into a file that reused its number.

    # -- what a broker loop asks (notifyloop.Listening) ----------------------------------------

    @property
    def stopped(self) -> bool:
        """Whether ``stop()`` was called."""
        return self._stopped

    def wait_for_wanted(self) -> bool:
        """Block until some channel is wanted (True) or the listener stopped (False)."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._wanted) or self._stopped)
            return not self._stopped

    def wanted(self) -> set[str]:
        """A copy of the reply channels wanted now."""
        with self._cond:
            return set(self._wanted)

    def stalled(self) -> set[str]:
        """RabbitMQ: the binds a wait could not make, not confirmed yet."""
        with self._cond:
            return self._stalled - self._confirmed

    def unstall(self, bound: set[str]) -> None:
        """RabbitMQ: the listening thread made these binds."""
        with self._cond:
            self._stalled -= bound
            self.confirm(bound)

    def _nap(self, pause: float) -> None:
        """The back-off's pause, cut short by ``stop()``."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopped, pause)
