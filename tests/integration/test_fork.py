"""A fork while another thread holds one of s3result's locks: the child must still work.

``os.fork()`` copies only the calling thread; a lock held by another thread is copied held and
nobody in the child releases it. Each case below holds one lock in a thread, forks, and has the
child store and read a result against moto. Everything runs in a subprocess that waits for the
child with a deadline, so a deadlock fails the test instead of hanging the suite.
Every lock is renewed by the one fork registry, s3result/s3/process.py (tests/test_forks.py): a
module's lock is a slot of the process state (``PROCESS``), an object's lock is registered there.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from s3result.testing.store import MotoServer
from tests.forking import reap_child

# Which lock to hold, as code run in the parent: it returns the lock. ``b`` is the backend.
LOCKS = {
    # The process-wide client registry's lock: the parent has not built its client yet.
    "clients lock": "slot('results.clients-lock')",
    # The client's lock: region switches take it.
    "S3Client._lock": "b.client._lock",
    # The process pool's lock: the child makes its own pool under it.
    "ProcessPool._lock": "b.client.pool._lock",
    # The retry quota: every success refunds a token under it.
    "RetryQuota._lock": "b.client._quota._lock",
    # First resolution of the credentials.
    "CredentialSource._lock": "b.client._credentials._lock",
    # Refresh of credentials in their mandatory window (they expire in 5 minutes).
    "CredentialSource._refresh_lock": "expiring(b.client)._refresh_lock",
    # The conditional-write probe runs once per process and store: the child probes again.
    "precondition lock": "slot('results.precondition.probe-lock', b.settings.store_id)",
    # The signing-key cache: the child derives its first key.
    "sigv4 keys lock": "slot('s3.sigv4.keys-lock')",
    # The once-per-host plain-http warning: the child builds a client to a non-loopback host.
    "connect warned lock": "slot('s3.connect.warned-lock')",
    # The write pacer, switched on by a throttling answer: the child's PUT takes a turn under it.
    "Pacer._lock": "(b.client.limits.writes.throttled(0.0), b.client.limits.writes)[1]._lock",
    # The process state's own lock (s3/process.py): the child's first client of another store makes
    # its pacers under it, and every registration with the fork registry takes it.
    "PROCESS.lock": "sys.modules['s3result.s3.process'].PROCESS.lock",
    # The parent's pool (its HttpcoreTransport): the child must never use it.
    "HttpcoreTransport._lock": "warm(b.client)._get_slot().transport._lock",
    # The ETag memory of the states this process wrote: the child's store_result consults it.
    "EtagMemory._lock": "sys.modules['s3result.results.store'].ETAGS.get(b.settings.store_id)._lock",
    # The group commit of the chord counters.
    "commit lock": "slot('chords.commit.lock')",
    # The chord sizes a process remembers.
    "chordmemory lock": "slot('chords.memory.lock')",
    # Who this process listens for (the notification listeners' registry).
    "notifyregistry lock": "slot('waits.registry.lock')",
}

SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, time, traceback
    from celery import Celery
    import s3result.s3.client, s3result.results.clients, s3result.results.precondition, s3result.s3.sigv4
    import s3result.chords.commit, s3result.chords.memory, s3result.waits.notifyregistry, s3result.s3.process
    from s3result.s3.credentials import Credentials, CredentialSource

    url, lock_code, tid = sys.argv[1], sys.argv[2], sys.argv[3]
    app = Celery(set_as_current=False)
    app.conf.result_backend = url
    b = app.backend
    creds = b.settings.access_key, b.settings.secret_key

    def expiring(client):
        source = CredentialSource([lambda: Credentials(*creds, expiry=time.time() + 300, source="test")])
        client._credentials = source
        source.get()
        return source

    def slot(name, *store):  # a slot of the process state (s3/process.py), by name: its value now
        return next(s for s in s3result.s3.process.PROCESS.slots() if s.name == name).get(*store)

    def warm(client):
        client._get_slot()
        return client

    lock = eval(lock_code)
    held, done = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            done.wait(60)

    threading.Thread(target=hold, daemon=True).start()
    held.wait(10)
    pid = os.fork()
    if pid == 0:
        try:
            from s3result.results import config
            from s3result.s3.client import S3Client
            S3Client(config.build(url="s3result+http://A:S@10.0.0.1:9/bucket", environ={}).s3)  # warns; no I/O
            b.store_result(tid, 42, "SUCCESS")
            assert b.get_task_meta(tid)["result"] == 42
            relock = eval(lock_code)  # what the child finds in the lock's place: a free lock
            assert relock.acquire(timeout=5), "the lock is still held in the child: not renewed at fork"
            relock.release()
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    """
) + reap_child(20, "child hung: deadlocked on the held lock")


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_child_completes_a_store_and_a_read_while_a_lock_was_held(moto_server: MotoServer, name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, moto_server.url("fork"), LOCKS[name], f"fork-{name}"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
