"""The Redis listening loop: SUBSCRIBE on each reply channel, wake waits on each message.

Through the redis client of kombu's Redis transport (its URL, options and ``global_keyprefix``).
Redis keeps nothing: with nobody subscribed a notification is dropped, and a subscription ends
with its connection. The loop selects on the connection's socket and the listener's wake-up
pipe, so a new channel or a stop is acted on at once.
"""

from __future__ import annotations

import os
import select
from typing import Any

from .notifyformat import CHANNEL_PREFIX
from .notifyloop import Listening

__all__ = ["run_redis"]


def run_redis(listener: Listening) -> None:
    """Subscribe to every wanted channel and deliver what comes, until stopped or the connection fails."""
    # A SUBSCRIBE of no channel is an error: connect once there is something to hear.
    if not listener.wait_for_wanted():
        return
    conn = listener.app.connection_for_read()
    try:
        with conn.default_channel.conn_or_acquire() as client:
            pubsub = client.pubsub()
        try:
            subscribed = listener.wanted()
            pubsub.subscribe(*[CHANNEL_PREFIX + r for r in subscribed])
            listener.up(set(), subscribed)
            # redis-py's private name: it has no public accessor of a connection's socket, and the
            # loop needs it to select() on with the wake-up pipe and to see redis-py reconnect by
            # itself. tests/test_layering.py fails if Connection stops having ``_sock``.
            sock = pubsub.connection._sock
            while not listener.stopped:
                while True:
                    message = pubsub.get_message(timeout=0)
                    if message is None:
                        break
                    _on_redis(listener, message)
                new = listener.wanted() - subscribed
                if new:
                    pubsub.subscribe(*[CHANNEL_PREFIX + r for r in new])
                    subscribed |= new
                if pubsub.connection is None or pubsub.connection._sock is not sock:
                    # redis-py reconnected by itself (its retries) and subscribes again:
                    # notifications may have been lost meanwhile.
                    sock = pubsub.connection._sock if pubsub.connection is not None else None
                    listener.up(set(), subscribed)
                readable, _, _ = select.select([sock, listener.wake_fd], [], [], 5.0)
                if listener.wake_fd in readable:
                    try:
                        os.read(listener.wake_fd, 4096)
                    except BlockingIOError:
                        pass
                if not readable:
                    pubsub.ping()  # a dead connection shows itself
        finally:
            pubsub.close()
    finally:
        conn.release()


def _on_redis(listener: Listening, message: dict[str, Any]) -> None:
    kind = message.get("type")
    if kind == "message":
        listener.deliver(message.get("data"))
    elif kind == "subscribe":
        name = message.get("channel")
        name = name.decode() if isinstance(name, bytes) else str(name)
        listener.confirm({name[name.find(CHANNEL_PREFIX) + len(CHANNEL_PREFIX) :]})
