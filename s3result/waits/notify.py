"""Waking the caller: a tiny notification over the Celery broker; the store keeps the result.

A worker stores a ready state in S3 first, then publishes ``{"id", "state", "etag"}`` (never the
result) to the reply channel named by the task message's ``reply_to``, which Celery sets to the
sending thread's ``app.thread_oid``. The sending process listens on the ``reply_to`` of each of
its threads that sent a task (``sent_from``, called from ``on_task_call``), over one broker
connection per process and app, in one daemon thread (a greenlet under gevent or eventlet
monkey-patching). A notification only wakes a wait, which then reads the store: a lost one costs
a poll, never a wrong answer, and any process can still read any result.

Nothing piles up on the broker:

- Redis: ``PUBLISH`` / ``SUBSCRIBE`` on ``s3result.notify.<reply_to>`` (``notifyredis``).
- RabbitMQ (``amqp``): one auto-delete queue per listening process, bound to the built-in
  ``amq.direct`` exchange once per ``reply_to`` (``notifyamqp``).
- Any other transport (SQS, filesystem, memory...): no notifications; callers poll.

This module is the front: publishing, and the process's listener for an app (``listener_for``).
The message format is ``notifyformat``, the listener and its waits ``notifylistener``, who this
process listens for ``notifyregistry``.
"""

from __future__ import annotations

from typing import Any

from celery.utils.log import get_logger

from ..s3.process import PROCESS
from . import notifyregistry
from .notifyformat import CHANNEL_PREFIX, EXCHANGE, MESSAGE_TTL_MS, payload
from .notifylistener import HEALTHY_AFTER, LATE_GRACE, MAX_FAILURES, SUBSCRIBE_TIMEOUT, Listener, Watch
from .notifyregistry import sent_from

__all__ = [
    "CHANNEL_PREFIX",
    "EXCHANGE",
    "HEALTHY_AFTER",
    "LATE_GRACE",
    "Listener",
    "MAX_FAILURES",
    "SUBSCRIBE_TIMEOUT",
    "Watch",
    "broker_kind",
    "current_listener",
    "listener_for",
    "publish",
    "say_once",
    "sent_from",
]

logger = get_logger(__name__)

_SUPPORTED = ("redis", "amqp")
_KINDS = PROCESS.slot(
    "waits.notify.kinds",
    dict[tuple[int, str], str],
    fork="kept",
    why="which broker an app's connection is, by app and broker URL: it does not change",
)
_SAID = PROCESS.slot("waits.notify.said", set[str], fork="kept", why="what was logged once per process")


def _app_key(app: Any) -> tuple[int, str]:
    """An app and the broker it is configured with now (tests and tools point an app elsewhere)."""
    conf = app.conf
    return id(app), f"{conf.broker_read_url or conf.broker_url} {conf.broker_transport}"


def broker_kind(app: Any) -> str:
    """The broker's driver type (``redis``, ``amqp``, ``sqs``...), found once per app and broker."""
    key = _app_key(app)
    kinds = _KINDS.get()
    kind = kinds.get(key)
    if kind is None:
        conn = app.connection_for_write()
        try:
            kind = str(getattr(conn.transport, "driver_type", "") or "")
        finally:
            conn.release()
        kinds[key] = kind
    return kind


def say_once(kind: str) -> None:
    """One INFO line per process and broker kind: woken over the broker, or polling."""
    said = _SAID.get()
    if kind in said:
        return
    said.add(kind)
    if kind in _SUPPORTED:
        logger.info("s3result: waiting callers are woken over the broker (%s); the store stays the result", kind)
    else:
        logger.info("s3result: no notifications over a %r broker: waiting callers poll the store", kind or "unknown")


def publish(app: Any, reply_to: str, task_id: str, state: str, etag: str | None) -> bool:
    """Tell ``reply_to`` that ``task_id`` reached ``state``; False where it was not sent.

    Never raises: the result is stored already, and the caller's polling finds it anyway.
    """
    try:
        kind = broker_kind(app)
        if kind == "redis":
            with app.pool.acquire(block=True, timeout=5) as conn:
                with conn.default_channel.conn_or_acquire() as client:
                    client.publish(CHANNEL_PREFIX + reply_to, payload(task_id, state, etag))
            return True
        if kind == "amqp":
            with app.producer_pool.acquire(block=True, timeout=5) as producer:
                producer.publish(
                    payload(task_id, state, etag),
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
        said = _SAID.get()
        if "publish" not in said:
            said.add("publish")
            logger.warning("s3result: could not notify the caller (it polls instead): %r", exc)
    return False


def listener_for(app: Any) -> Listener | None:
    """This process's listener for ``app``, started on first use; None when it cannot listen."""
    if not notifyregistry.senders(app):
        return None  # this process sent nothing: nobody would notify it
    key = _app_key(app)
    listener: Listener | None = notifyregistry.listener(key)
    if listener is not None:
        return listener
    kind = broker_kind(app)
    say_once(kind)
    if kind not in _SUPPORTED:
        return None
    return notifyregistry.replace_listener(key, lambda: Listener(app, kind))


def current_listener(app: Any) -> Listener | None:
    """The listener already running for ``app`` and its broker, if any (for tests and tools)."""
    found: Listener | None = notifyregistry.listener(_app_key(app))
    return found
