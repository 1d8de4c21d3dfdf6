"""The embedded moto's conditional writes are serialised: check and write never interleave."""

from __future__ import annotations

import threading
import time

from s3result.testing import atomic_moto as _atomic_moto


class _RacyHandler:
    """Checks, yields the CPU, then writes: what moto's put_object does, with a wider window."""

    def __init__(self) -> None:
        self.value = 0
        self.wins = 0

    def put_object(self) -> str:
        seen = self.value
        time.sleep(0.001)
        if self.value != seen:
            return "412"
        self.value = seen + 1
        self.wins += 1
        return "200"


def _run(handler: _RacyHandler, put: object) -> None:
    barrier = threading.Barrier(16)

    def writer() -> None:
        barrier.wait()
        for _ in range(20):
            put(handler)  # type: ignore[operator]

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_the_racy_handler_loses_updates_without_the_lock() -> None:
    # The control: without the lock, writers that checked the same value both write it.
    handler = _RacyHandler()
    _run(handler, _RacyHandler.put_object)
    assert handler.value < 16 * 20


def test_serialised_handler_never_interleaves() -> None:
    handler = _RacyHandler()
    _run(handler, _atomic_moto._serialised(_RacyHandler.put_object))
    assert handler.value == handler.wins == 16 * 20


def test_moto_handlers_are_wrapped_once() -> None:
    from moto.s3.responses import S3Response

    _atomic_moto.make_conditional_writes_atomic()
    first = S3Response.put_object
    _atomic_moto.make_conditional_writes_atomic()
    assert S3Response.put_object is first
    assert getattr(S3Response.put_object, "__s3result_atomic__", False)
    assert getattr(S3Response.delete_object, "__s3result_atomic__", False)
