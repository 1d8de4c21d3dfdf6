"""The runtime's process-wide state: the slots of its one owner, and the few module globals left.

Everything the threads of a process share is a slot of ``s3result.s3.process.PROCESS``, declared
once by the module that uses it (``PROCESS.slot(...)``, ``PROCESS.store_slot(...)`` for one value
per store), with its fate in a forked child. The owner applies the fates in one documented
order, from the one fork registry (the same module). Fates:

- ``renewed``: a lock; the child gets a new, free one (another thread may have held it).
- ``emptied``: work of the parent's threads (queues, commits in flight, listeners on the
  parent's sockets); the child starts with none.
- ``kept``: a fact still true in the child, or a registry whose objects renew themselves
  (a client's pool is keyed by PID, a pacer's queued turns are dropped): the same object.

``tests/test_layering.py`` checks ``SLOTS`` against the declarations in the source (an ``ast``
scan: name and fate) and fails on any mutable module global that is neither a slot nor listed
in ``GLOBALS``; the real-fork test (``tests/integration/test_fork_state.py``) checks each slot's
fate as written here in a child of a process that used the backend against moto and held every
lock at the fork.
"""

from __future__ import annotations

#: Slot name -> (fate in a forked child, why the process shares it), in declaration order.
SLOTS: dict[str, tuple[str, str]] = {
    # -- s3/: the client, standing alone --
    "s3.sigv4.keys": ("kept", "signing keys derived from a secret and a date: still valid, any client may reuse them"),
    "s3.sigv4.keys-lock": ("renewed", "guards the signing-key cache"),
    "s3.connect.warned": ("kept", "what was warned of once per process (plain http to a host, verification off)"),
    "s3.connect.warned-lock": ("renewed", "guards what was warned of"),
    "s3.limiter.limiters": ("kept", "the pacers of each store (StoreId), shared by its clients; queued turns dropped"),
    # -- results/ --
    "results.clients": ("kept", "one client per settings; its pool is keyed by PID, made anew in a child"),
    "results.clients-lock": ("renewed", "guards the clients by settings"),
    "results.precondition.verdicts": ("kept", "each store's conditional-write verdict and failed-probe backoff"),
    "results.precondition.probe-lock": ("renewed", "one probe at a time per store"),
    "results.store.etags": ("emptied", "the ETags this process wrote, per store: a child's writes are its own"),
    # -- waits/ --
    "waits.notify.kinds": ("kept", "which broker an app's connection is (it does not change)"),
    "waits.notify.said": ("kept", "what was logged once per process"),
    "waits.registry.lock": ("renewed", "guards who the process listens for"),
    "waits.registry.listeners": ("emptied", "the parent's listeners own its sockets: held, never used or closed"),
    "waits.registry.senders": ("emptied", "the reply_to queues the parent's threads sent with"),
    # -- chords/ --
    "chords.commit.lock": ("renewed", "guards the group commits"),
    "chords.commit.queues": ("emptied", "commits in flight: their threads stayed in the parent"),
    "chords.memory.sizes": ("kept", "a group never changes size"),
    "chords.memory.decisions": ("kept", "native or chord_unlock, decided when the chord was applied"),
    "chords.memory.bodies": ("kept", "the body to fail if a chord's size cannot be recorded"),
    "chords.memory.lock": ("renewed", "guards what the process remembers of chords"),
    # -- the worker's signals --
    "worker.runs": ("kept", "each thread's last task end and the gap before its current task"),
    "worker.start": (
        "kept",
        "signals connected, apps watched, stores checked (by PID), the verdict's retry, a prefork pool",
    ),
}

#: "module:name" -> why it stays a module global (outside the owner). Nothing else may.
GLOBALS: dict[str, str] = {
    "s3result.s3.process:PROCESS": "the owner itself, and the fork registry: os.register_at_fork holds its hook",
    "s3result.s3.limiter:DEFAULT_PACING": "a constant: a frozen PacingConfig",
    "s3result.s3.progress:AGAIN": "a constant: a marker with no fields",
    "s3result.s3.retry:DEFAULT_RETRY": "a constant: a frozen RetryConfig",
    "s3result.s3.retry:_JITTER": "SystemRandom reads os.urandom: it holds no state to own or renew",
    "s3result.s3.wholedeadline:_local": "per thread, not per process: the forking thread is between requests",
    "s3result.waits.notifylistener:RECONNECT": "a constant: a frozen RetryConfig",
    "s3result.worker:_RETAKE_BACKOFF": "a constant: a Backoff (a config, a sleep and a random source)",
}
