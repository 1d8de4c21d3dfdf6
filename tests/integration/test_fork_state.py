"""After a real fork, every piece of the runtime's process-wide state is what the table says.

``tests/process_state.py`` lists every mutable module global of the runtime (``tests/test_layering.py``
checks the list against the source) with its fate in a forked child. Here a process builds a
backend against moto, stores and reads a result (clients, verdict, ETags, signing keys made),
puts work in flight in the tables a child must not inherit, holds *every* lock of the table in
another thread, and forks. The child checks each entry (renewed: a new free lock; emptied: no
item; kept, constant: the very object the parent had), then stores and reads a result. It runs
in a subprocess that waits with a deadline, so a deadlock fails the test instead of hanging.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from s3result.testing.store import MotoServer
from tests.forking import reap_child
from tests.process_state import STATE

SCRIPT = textwrap.dedent(
    """
    import importlib, json, os, sys, threading, time, traceback
    from celery import Celery

    url, table = sys.argv[1], json.loads(sys.argv[2])
    app = Celery(set_as_current=False)
    app.conf.result_backend = url
    b = app.backend
    b.store_result("fork-state-parent", 1, "SUCCESS")
    assert b.get_task_meta("fork-state-parent")["result"] == 1
    b.store_result("fork-state-started", None, "STARTED")  # its ETag is remembered for the next state

    from s3result.chords import commit
    from s3result.waits import notifyregistry

    class Listener:
        def stop(self):
            pass

    commit._slots[("in-flight",)] = object()  # stands for a commit whose threads stay in the parent
    notifyregistry.sent_from(app, "reply-queue")
    notifyregistry._listeners[(id(app), "redis")] = Listener()

    def resolve(entry):
        module, name = entry.split(":")
        return getattr(importlib.import_module(module), name)

    def size_of(entry):
        value = resolve(entry)
        return len(value._items) if entry.endswith(":_etags") else len(value)

    for entry, fate in table.items():
        if fate == "emptied":
            assert size_of(entry), f"{entry}: nothing in flight in the parent: the test proves nothing"
    before = {entry: id(resolve(entry)) for entry, fate in table.items() if fate in ("kept", "constant")}
    locks = [resolve(e) for e, fate in table.items() if fate == "renewed"] + [b.store._etags._lock]
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
            for entry, fate in table.items():
                if fate == "renewed" and not resolve(entry).acquire(blocking=False):
                    wrong.append(f"{entry}: still held in the child")
                elif fate == "emptied" and size_of(entry):
                    wrong.append(f"{entry}: the parent's {size_of(entry)} item(s) in the child")
                elif entry.endswith(":_etags") and not resolve(entry)._lock.acquire(blocking=False):
                    wrong.append(f"{entry}: its lock is still held in the child")
                elif entry.endswith(":_etags"):
                    resolve(entry)._lock.release()
                elif fate in ("kept", "constant") and id(resolve(entry)) != before[entry]:
                    wrong.append(f"{entry}: replaced in the child, the table says kept")
            for entry, fate in table.items():
                if fate == "renewed":
                    resolve(entry).release()
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
def test_a_forked_child_gets_each_piece_of_process_state_as_the_table_says(moto_server: MotoServer) -> None:
    table = {entry: fate for entry, (fate, _why) in STATE.items()}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, moto_server.url("fork-state"), json.dumps(table)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
