"""redis-py's private ``Connection._sock``, which the notification loop selects on, against a real server.

``s3result/waits/notifyredis.py`` waits on ``pubsub.connection._sock`` with the wake-up pipe
(redis-py has no public accessor of a connection's socket) and compares it to see redis-py
reconnect by itself. This fails loudly if redis-py stops keeping a selectable socket there.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest

from tests.brokers import RedisServer

redis = pytest.importorskip("redis")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_a_subscribed_pubsub_has_a_socket_to_select_on_that_a_publish_wakes(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url())
    pubsub = client.pubsub()
    try:
        pubsub.subscribe("s3result-sock-check")
        sock = pubsub.connection._sock
        assert isinstance(sock, socket.socket), (
            f"redis-py's Connection._sock is {type(sock).__name__}: update s3result/waits/notifyredis.py"
        )
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        client.publish("s3result-sock-check", b"x")
        ready, _, _ = select.select([sock], [], [], 5)
        assert ready == [sock], "a publish did not make Connection._sock readable: update notifyredis"
        message = pubsub.get_message(timeout=5)
        assert message is not None and message["data"] == b"x"
    finally:
        pubsub.close()
        client.close()
