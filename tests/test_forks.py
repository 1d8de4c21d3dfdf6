"""The one fork registry (s3result/s3/process.py): order, weak owners, a real fork.

Integration: tests/integration/test_fork.py holds each of s3result's locks in a thread, forks,
and has the child store and read a result. tests/test_layering.py checks that no other module
calls ``os.register_at_fork``.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref

import pytest

from s3result.s3 import process as forks

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")


def _in_child(check: object) -> int:
    """Fork, run ``check()`` in the child; its exit code (1: failed, 3: hung past 10 s)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its exit code is the verdict
        try:
            ok = check()  # type: ignore[operator]
        except BaseException:
            os._exit(1)
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return 3


class _Owner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[str] = []
        forks.renew_locks_after_fork(self, "_lock")
        forks.on_fork_in_child(self.renewed)

    def renewed(self) -> None:
        # Step 4 runs after step 2: the lock this object held at the fork is free already.
        self.seen.append("free" if self._lock.acquire(blocking=False) else "held")


def test_a_child_gets_free_locks_then_runs_the_callbacks_in_order() -> None:
    owner = _Owner()
    order: list[int] = []
    forks.on_fork_in_child(lambda: order.append(1))
    forks.on_fork_in_child(lambda: order.append(2))
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with owner._lock:
            held.set()
            done.wait(30)

    threading.Thread(target=hold, daemon=True).start()
    assert held.wait(10)
    try:
        assert _in_child(lambda: owner.seen == ["free"] and order[-2:] == [1, 2]) == 0
    finally:
        done.set()


def test_a_fork_while_another_thread_registers_leaves_the_child_a_free_registry() -> None:
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with forks.PROCESS.lock:
            held.set()
            done.wait(30)

    threading.Thread(target=hold, daemon=True).start()
    assert held.wait(10)
    try:
        assert _in_child(lambda: forks.on_fork_in_child(lambda: None) is None) == 0
    finally:
        done.set()


def test_registering_keeps_no_owner_alive() -> None:
    owner = _Owner()
    alive = weakref.ref(owner)
    del owner
    gc.collect()
    assert alive() is None, "the fork registry keeps its owners alive"
    forks.on_fork_in_child(lambda: None)  # prunes the dead method
    assert all(not (isinstance(c, weakref.WeakMethod) and c() is None) for c in forks.PROCESS._callbacks)


def test_a_fork_callback_that_raises_does_not_stop_the_ones_after_it() -> None:
    """A broken callback is logged in the child; the later callbacks (and their locks) still run."""
    order: list[str] = []

    def broken() -> None:
        order.append("broken")
        raise RuntimeError("a fork callback that fails")

    forks.on_fork_in_child(broken)
    forks.on_fork_in_child(lambda: order.append("after"))
    assert _in_child(lambda: order[-2:] == ["broken", "after"]) == 0
