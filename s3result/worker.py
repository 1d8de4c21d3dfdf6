"""A worker's start: the store's first answers before it takes a task, the verdict before it forks.

Connected explicitly, by ``connect()``, which ``S3Backend.__init__`` calls (the first backend a
process builds connects them; later calls only add their app): importing s3result connects no
Celery signal. Celery builds the backend for the worker's start-up banner, before its pool forks
and its consumer takes the first message, so ``worker_before_create_process`` and
``worker_ready`` always find the handlers connected; ``worker_init`` comes earlier and finds them
only when the app built its backend first.

``backend_class`` is handed in by the backend module (this module imports nothing of it), and
the handlers use only what every ``S3Backend`` has: ``check_store``, ``settings``, ``url`` and
``client``. The line saying whether waiting callers are woken over the broker is said here too.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from celery import signals
from celery.utils.log import get_logger

from .errors import ConfigError
from .results.config import ConditionalWrites, raw_slash_warning
from .results.precondition import known
from .s3.process import PROCESS
from .s3.retry import Backoff, RetryConfig, is_permanent
from .waits import notify

__all__ = (
    "check_before_fork",
    "check_store_at_start",
    "connect",
    "connected",
    "forget_checks",
    "idle_before",
    "pooled",
    "say_how_callers_wake",
    "time_limited",
)

logger = get_logger(__name__)


@dataclass(slots=True)
class _Start:
    """What this process knows of its worker's start; a forked child keeps it all."""

    #: The backend class the handlers act for (None until ``connect``): connected once.
    backend_class: type | None = None
    #: The processes whose store was checked (a child checks for itself: its PID is not here).
    checked: set[int] = field(default_factory=set)
    #: The apps this process built an S3Backend for, weakly: a prefork parent checks them before it forks.
    apps: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    #: When the main process may next try a verdict the start check could not take, and how many
    #: tries failed: the pause after the n-th doubles from 1 s to a minute (the retry policy's ceiling).
    retake_at: float | None = None
    retake_failures: int = 0
    #: A prefork pool forks this process's children (and a child keeps it): its pool processes
    #: run a chord's parts side by side (``pooled``).
    prefork: bool = False
    #: The pool's time limits (``celery worker --time-limit``, ``--soft-time-limit``): Celery
    #: hands them to the pool, not to ``app.conf`` (``time_limited``).
    limited: bool = False


class _Runs(threading.local):
    """The calling thread's last task end and current task start (``time.monotonic()``)."""

    ended: float | None = None
    gap: float | None = None


_RUNS = PROCESS.slot(
    "worker.runs",
    _Runs,
    fork="kept",
    why="each thread's last task end and the gap before its current task (chords.turns): a pool's parent runs none",
)

_START = PROCESS.slot(
    "worker.start",
    _Start,
    fork="kept",
    why="the signals connected, the apps watched, the stores checked (by PID), the verdict's retry, a prefork pool, its time limits: still so",
)


def connect(app: Any, backend_class: type) -> None:
    """Connect the worker's signal handlers (once per process) and watch ``app``'s backend."""
    start = _START.get()
    start.apps.add(app)
    if start.backend_class is not None:
        return
    start.backend_class = backend_class
    # dispatch_uid: a second connect (two threads building their first backend at once) is a no-op.
    signals.worker_init.connect(check_store_at_start, weak=False, dispatch_uid="s3result-check-store-at-init")
    signals.worker_before_create_process.connect(
        check_before_fork, weak=False, dispatch_uid="s3result-check-store-before-fork"
    )
    signals.worker_ready.connect(check_store_at_start, weak=False, dispatch_uid="s3result-check-store-at-ready")
    signals.worker_ready.connect(say_how_callers_wake, weak=False, dispatch_uid="s3result-notify-at-ready")
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="s3result-task-started")
    signals.task_postrun.connect(_task_ended, weak=False, dispatch_uid="s3result-task-ended")


def connected() -> bool:
    """Whether ``connect`` has run in this process."""
    return _START.get().backend_class is not None


def _ours(backend: Any) -> bool:
    backend_class = _START.get().backend_class
    return backend_class is not None and isinstance(backend, backend_class)


def forget_checks() -> None:
    """Run the start check again in this process (tests: each one starts a worker anew)."""
    _START.get().checked.clear()


def _task_started(**_: Any) -> None:
    runs = _RUNS.get()
    runs.gap = None if runs.ended is None else time.monotonic() - runs.ended


def _task_ended(**_: Any) -> None:
    _RUNS.get().ended = time.monotonic()


def idle_before() -> float | None:
    """How long the calling thread was idle before its current task: from its last task's end
    (after its result was stored) to this one's start; None before its first task, or outside a
    worker (``chords.turns``: a thread that runs tasks back to back takes no turns)."""
    return _RUNS.get().gap


def time_limited() -> bool:
    """Whether this process's pool enforces time limits (``celery worker --time-limit`` or
    ``--soft-time-limit``, which Celery hands to the pool and not to ``app.conf``)."""
    return _START.get().limited


def pooled() -> bool:
    """Whether this process is a prefork pool's child: the parts of a chord run side by side in
    its pool (``chords.turns`` takes turns from the first chord there, not after a lost race)."""
    return _START.get().prefork


def check_store_at_start(sender: Any = None, **_: Any) -> None:
    """The store's first answers before the worker takes a task; a store that cannot work stops it.

    With ``conditional_writes=probe`` that is the conditional-write verdict kept in the bucket
    (its GET and one conditional PUT that confirms it; the probe where there is none), else one
    GET (``S3Backend.check_store``).

    Connected to ``worker_init`` and to ``worker_ready``, which Celery sends before its
    consumer handles the first message. Runs once per process. A permanent failure (missing
    bucket, 401/403, TLS, unresolvable host) would lose the result of every task the worker
    takes and acknowledges, so the worker exits with code 1 after one line naming the fix, and
    the tasks stay queued. A transient one (the store down or slow for now) is a warning: it
    may be back by the first result, and the client retries.
    """
    app = getattr(sender, "app", None)
    checked = _START.get().checked
    if app is None or os.getpid() in checked:
        return
    backend = app.backend
    if not _ours(backend):
        return
    checked.add(os.getpid())
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


def say_how_callers_wake(sender: Any = None, **_: Any) -> None:
    """One line at the worker's start: waiting callers woken over the broker, or polling (``notify``)."""
    app = getattr(sender, "app", None)
    if app is None or not _ours(app.backend) or not app.backend.settings.notify:
        return
    try:
        notify.say_once(notify.broker_kind(app))
    except Exception as exc:  # noqa: BLE001 - a log line must not stop a worker
        logger.debug("s3result: broker kind unknown: %r", exc)


def check_before_fork(sender: Any = None, **_: Any) -> None:
    """The start check in a prefork worker's main process, before its first child is forked.

    ``worker_init`` comes before the backend is usually built (the start-up banner builds it),
    and ``worker_ready`` after the pool has forked its children: checked there, each child
    would take the conditional-write verdict again (and with ``worker_max_tasks_per_child=1``,
    once per task). Checked here, once, every child inherits it.
    """
    start = _START.get()
    start.prefork = True
    start.limited = bool(getattr(sender, "timeout", None) or getattr(sender, "soft_timeout", None))
    for app in list(_START.get().apps):
        check_store_at_start(sender=SimpleNamespace(app=app))
        _retake_verdict(app)
        _renew_credentials(app)


def _renew_credentials(app: Any) -> None:
    """Credentials due for a refresh are refreshed here, once, not by every child forked next.

    The main process makes no request after its start check: hours later its credentials
    (an IAM role's, from IMDS or a container endpoint) are inside their refresh window, and
    with ``worker_max_tasks_per_child=1`` each child would fetch them again for its one task.
    """
    backend = app.backend
    if not _ours(backend):
        return
    try:
        backend.client.renew_credentials()
    except Exception as exc:  # noqa: BLE001 - a child resolves them itself, and reports a failure
        logger.info("s3result: could not renew the credentials before forking a child: %s", exc)


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
    start = _START.get()
    backend = app.backend
    if not _ours(backend) or backend.settings.conditional_writes is not ConditionalWrites.PROBE:
        return
    now = time.monotonic()
    if known(backend.client) is not None:
        return
    if start.retake_at is None:  # the start check has just failed: not again at once
        start.retake_at = now + _RETAKE_BACKOFF.ceiling(start.retake_failures + 1)
    if now < start.retake_at:
        return
    error = backend.check_store(min(backend.settings.connect_timeout, 2.0))
    if error is None:
        return
    start.retake_failures += 1
    pause = _RETAKE_BACKOFF.ceiling(start.retake_failures + 1)
    start.retake_at = time.monotonic() + pause
    logger.info(
        "s3result: conditional-write verdict still not taken (%s); children probe for themselves until "
        "it is, tried again before a fork in %gs",
        error,
        pause,
    )
