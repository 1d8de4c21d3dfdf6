"""Callers queued behind a conditional-write probe that fails: one probe, not one each in turn.

The verdict is taken under one lock per process. A store that accepts connections and never
answers makes the probe fail after its timeouts; every thread (or greenlet) of a pool that was
waiting on the lock would then probe again in turn, each for the whole timeout: with 20
greenlets and a 2 s read timeout, the last task stored nothing for 182 s. Those waiting get the
failed probe's error instead; a caller that comes after it probes again (the store may be back).
"""

from __future__ import annotations

import socket
import threading

import pytest
from celery import Celery

from s3result.errors import RequestTimeout


def test_threads_waiting_on_a_failing_probe_share_its_error(silent_counted: tuple[int, list[socket.socket]]) -> None:
    port, held = silent_counted
    app = Celery(set_as_current=False)
    app.conf.result_backend = f"s3result+http://AKID:SECRET@127.0.0.1:{port}/bucket/p?read_timeout=0.5&max_attempts=1"
    errors: list[BaseException] = []
    gate = threading.Barrier(8)

    def store(i: int) -> None:
        gate.wait()
        try:
            app.backend.store_result(f"task-{i}", i, "SUCCESS")  # each thread has its own backend
        except Exception as exc:  # noqa: BLE001 - collected
            errors.append(exc)

    threads = [threading.Thread(target=store, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 8 and all(isinstance(e, RequestTimeout) for e in errors), errors
    # One probe: its PUT and the DELETE that cleans up after it; 8 probes in turn made 16.
    assert len(held) <= 2, len(held)
    # Later, the store may be back: a new caller probes again.
    with pytest.raises(RequestTimeout):
        app.backend.store_result("task-late", 0, "SUCCESS")
    assert len(held) <= 4, len(held)
