"""After a real fork, every slot of the process state is what the table says.

``tests/process_state.py`` lists every slot of ``s3result.s3.process.PROCESS`` with its fate in a
forked child (``tests/test_layering.py`` checks the list against the source). Here a process
builds a backend against moto, stores and reads a result (clients, verdict, ETags, signing keys
made), puts work in flight in the slots a child must not inherit, holds *every* lock of the
table, the owner's own and the ETag memories' in another thread, and forks. The child checks
each slot against the table's fate (renewed: a new free lock; emptied: nothing of the parent's;
kept: the very object the parent had), then stores and reads a result. It runs in a subprocess
that waits with a deadline, so a deadlock fails the test instead of hanging.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from s3result.testing.store import MotoServer
from tests import layering
from tests.forking import reap_child
from tests.process_state import SLOTS

SCRIPT = textwrap.dedent(
    """
    import importlib, json, os, sys, threading, time, traceback
    from celery import Celery

    url, table, runtime = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    for name in runtime:  # every module that declares a slot
        importlib.import_module(name)
    from s3result.s3.process import PROCESS, StoreSlot
    from s3result.chords import commit
    from s3result.waits import notifyregistry

    app = Celery(set_as_current=False)
    app.conf.result_backend = url
    b = app.backend
    b.store_result("fork-state-parent", 1, "SUCCESS")
    assert b.get_task_meta("fork-state-parent")["result"] == 1
    b.store_result("fork-state-started", None, "STARTED")  # its ETag is remembered for the next state
    store = b.settings.store_id

    class Listener:
        def stop(self):
            pass

    listener = Listener()
    commit._QUEUES.get()[("in-flight",)] = object()  # stands for a commit whose threads stay in the parent
    notifyregistry.sent_from(app, "reply-queue")
    notifyregistry._LISTENERS.get()[(id(app), "redis")] = listener

    slots = {s.name: s for s in PROCESS.slots()}
    missing = sorted(set(table) ^ set(slots))
    assert not missing, f"the table and the declared slots differ: {missing}"

    def value(name):
        slot = slots[name]
        return slot.get(store) if isinstance(slot, StoreSlot) else slot.get()

    for name, fate in table.items():
        if fate == "emptied":
            assert len(value(name)), f"{name}: nothing in flight in the parent: the test proves nothing"
    before = {name: id(value(name)) for name, fate in table.items() if fate == "kept"}
    etags = value("results.store.etags")
    locks = [value(n) for n, fate in table.items() if fate == "renewed"] + [etags._lock, PROCESS.lock]
    held, done = threading.Event(), threading.Event()

    def hold():
        for lock in locks:
            lock.acquire()
        held.set()
        done.wait(60)

    threading.Thread(target=hold, daemon=True).start()
    assert held.wait(10)
    pid = os.fork()
    if pid == 0:
        try:
            wrong = []
            if not PROCESS.lock.acquire(blocking=False):
                wrong.append("PROCESS.lock: still held in the child")
            for name, fate in table.items():
                found = value(name)
                if fate == "renewed" and not found.acquire(blocking=False):
                    wrong.append(f"{name}: still held in the child, the table says renewed")
                elif fate == "emptied" and len(found):
                    wrong.append(f"{name}: the parent's {len(found)} item(s) in the child, the table says emptied")
                elif fate == "kept" and id(found) != before[name]:
                    wrong.append(f"{name}: replaced in the child, the table says kept")
            if not value("results.store.etags")._lock.acquire(blocking=False):
                wrong.append("results.store.etags: a memory's lock still held in the child")
            if not any(isinstance(h, dict) and listener in h.values() for h in PROCESS.held):
                wrong.append("waits.registry.listeners: the parent's listener is not held (its finalizer may run)")
            for name, fate in table.items():
                if fate == "renewed":
                    value(name).release()
            value("results.store.etags")._lock.release()
            PROCESS.lock.release()
            b.store_result("fork-state-child", 2, "SUCCESS")
            assert b.get_task_meta("fork-state-child")["result"] == 2
            assert b.get_task_meta("fork-state-parent")["result"] == 1
            if wrong:
                print("\\n".join(wrong), file=sys.stderr)
                os._exit(1)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    """
) + reap_child(30, "child hung: deadlocked on a lock held at the fork")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork")
def test_a_forked_child_gets_each_slot_of_the_process_state_as_the_table_says(moto_server: MotoServer) -> None:
    table = {name: fate for name, (fate, _why) in SLOTS.items()}
    modules = layering.load()
    declaring = sorted(n for n, m in layering.runtime(modules).items() if layering.slots(m))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, moto_server.url("fork-state"), json.dumps(table), json.dumps(declaring)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
