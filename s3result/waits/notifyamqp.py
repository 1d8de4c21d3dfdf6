"""The RabbitMQ listening loop: one auto-delete queue per process, bound once per reply_to.

The queue has ``x-expires`` and ``x-message-ttl`` and is bound to the built-in ``amq.direct``
exchange; a notification is published there without ``mandatory``, so with no queue bound it is
dropped. The queue is not exclusive: a waiting thread binds its ``reply_to`` over a pooled
connection while this loop consumes, and binds a wait could not make are made here.
Auto-delete removes the queue (and its bindings) when the connection goes, SIGKILL included.
"""

from __future__ import annotations

from typing import Any

from .notifyformat import EXCHANGE, MESSAGE_TTL_MS
from .notifyloop import Listening

__all__ = ["QUEUE_EXPIRES_MS", "run_amqp"]

#: A listener's queue goes this long (ms) after its last consumer.
QUEUE_EXPIRES_MS = 60_000


def run_amqp(listener: Listening) -> None:
    """Declare this process's queue, bind every wanted reply_to and deliver what comes, until stopped."""
    conn = listener.app.connection_for_read()
    try:
        conn.ensure_connection(max_retries=1)
        channel = conn.channel()
        channel.queue_declare(
            queue=listener.queue,
            durable=False,
            exclusive=False,
            auto_delete=True,
            arguments={"x-expires": QUEUE_EXPIRES_MS, "x-message-ttl": MESSAGE_TTL_MS},
        )
        wanted = listener.wanted()
        for reply_to in wanted:
            channel.queue_bind(queue=listener.queue, exchange=EXCHANGE, routing_key=reply_to)
        channel.basic_consume(
            queue=listener.queue, no_ack=True, callback=lambda message: listener.deliver(message.body)
        )
        listener.up(wanted, wanted)
        while not listener.stopped:
            try:
                conn.drain_events(timeout=1.0)
            except TimeoutError:
                conn.heartbeat_check()
            _bind_stalled(listener, channel)
    finally:
        try:
            conn.release()
        except Exception:  # noqa: BLE001, S110 - the connection is gone already
            pass


def _bind_stalled(listener: Listening, channel: Any) -> None:
    """Make the binds a wait could not make, on the listener's own channel (a failure here
    is the connection's: the listener reconnects, and binds everything wanted)."""
    stalled = listener.stalled()
    if not stalled:
        return
    for reply_to in stalled:
        channel.queue_bind(queue=listener.queue, exchange=EXCHANGE, routing_key=reply_to)
    listener.unstall(stalled)
