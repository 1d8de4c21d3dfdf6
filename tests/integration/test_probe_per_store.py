"""A store that never answers holds back no other store's first write.

The conditional-write probe runs once per store and process, under a lock. With one lock for
the whole process, a worker writing to two stores (two apps, or a store and its replica) waited
for the silent store's probe to time out before it could probe the healthy one: its first
result there was late by the silent store's read timeout, on every thread.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from typing import Any

from celery import Celery

from s3result.testing.store import MotoServer


def _app(url: str) -> Celery:
    app = Celery(set_as_current=False)
    app.conf.result_backend = url
    return app


def test_a_silent_stores_probe_does_not_hold_back_another_store(
    moto_server: MotoServer, boto3_client: Any, silent_counted: tuple[int, list[socket.socket]]
) -> None:
    silent_port, held = silent_counted
    # A bucket of its own: the healthy store's verdict is not known to this process yet.
    bucket = f"probe-{uuid.uuid4().hex[:8]}"
    boto3_client.create_bucket(Bucket=bucket)
    healthy = _app(moto_server.url("p").replace(f"/{moto_server.bucket}/", f"/{bucket}/"))
    silent = _app(f"s3result+http://AKID:SECRET@127.0.0.1:{silent_port}/bucket/p?read_timeout=20&max_attempts=1")
    failed: list[BaseException] = []

    def stuck() -> None:
        try:
            silent.backend.store_result("silent-task", 1, "SUCCESS")
        except Exception as exc:  # noqa: BLE001 - the silent store's timeout, expected
            failed.append(exc)

    waiting = threading.Thread(target=stuck, daemon=True)
    waiting.start()
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:  # the probe's first request is in flight
        time.sleep(0.01)
    assert held, "the silent store's probe never connected"
    healthy.backend.store_result("healthy-task", 2, "SUCCESS")  # probes its own store meanwhile
    # The silent store's probe is still waiting for its first answer (20 s read timeout): the
    # healthy store's first write did not wait for it.
    assert waiting.is_alive() and not failed
    assert healthy.backend.get_task_meta("healthy-task")["result"] == 2
