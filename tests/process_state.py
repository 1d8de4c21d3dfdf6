"""Every mutable module global of the runtime, with what a forked child gets of it and why.

``tests/test_layering.py`` checks this table against the source (``layering.module_state``: an
``ast`` scan), so a new global nobody accounted for fails the suite; the real-fork test
(``tests/integration/test_fork_state.py``) checks each fate in a child of a process that used
the backend against moto and held every lock at the fork.

The owner of every piece of it in a child is the one fork registry, ``s3result/s3/forks.py``:
each module registers its hook there (a process-wide object per store, such as a client or a
limiter, is reached through its registry: ``results.clients`` by settings, ``s3.limiter`` by
``StoreId``). Fates:

- ``renewed``: a lock; the child gets a new, free one (another thread may have held it).
- ``emptied``: work of the parent's threads (queues, commits in flight, listeners on the
  parent's sockets); the child starts with none.
- ``kept``: a fact still true in the child, or a registry whose objects renew themselves
  (a client's pool is keyed by PID, a pacer's queue is dropped): the same object, on purpose.
- ``constant``: a value nobody changes (a frozen dataclass, a marker); the scan cannot see that.
"""

from __future__ import annotations

#: "module:name" -> (fate in a forked child, why it is a module global).
STATE: dict[str, tuple[str, str]] = {
    # -- s3/: the client, standing alone --
    "s3result.s3.forks:_lock": ("renewed", "the registry's own lock: it cannot be owned by what it renews"),
    "s3result.s3.forks:_owners": ("kept", "the registry: what to renew at every later fork too (weak owners)"),
    "s3result.s3.forks:_callbacks": ("kept", "the registry's hooks, in registration order (weak bound methods)"),
    "s3result.s3.sigv4:_key_cache": (
        "kept",
        "signing keys derived from a secret and a date: any client may reuse them",
    ),
    "s3result.s3.sigv4:_key_cache_lock": ("renewed", "guards the signing-key cache"),
    "s3result.s3.connect:_warned_plain_http": (
        "kept",
        "hosts warned of once per process (a log, not state of a store)",
    ),
    "s3result.s3.connect:_warned_lock": ("renewed", "guards the warned hosts"),
    "s3result.s3.network:_warned_unverified": ("kept", "verification off is logged once per process"),
    "s3result.s3.limiter:_limiters": ("kept", "the pacers of each store (StoreId), shared by every client of it"),
    "s3result.s3.limiter:_pacers": ("kept", "every pacer, weakly: the fork hook drops their queued turns"),
    "s3result.s3.limiter:_registry_lock": ("renewed", "guards the limiters by store"),
    "s3result.s3.limiter:DEFAULT_PACING": ("constant", "a frozen PacingConfig"),
    "s3result.s3.progress:AGAIN": ("constant", "a marker with no fields"),
    "s3result.s3.retry:DEFAULT_RETRY": ("constant", "a frozen RetryConfig"),
    "s3result.s3.retry:_JITTER": ("kept", "SystemRandom reads os.urandom: it holds no state to share"),
    "s3result.s3.wholedeadline:_local": ("kept", "per thread: the forking thread is between requests"),
    # -- results/ --
    "s3result.results.clients:_clients": ("kept", "one client per settings; its pool is keyed by PID, made anew"),
    "s3result.results.clients:_lock": ("renewed", "guards the clients by settings"),
    "s3result.results.precondition:_cache": ("kept", "the store's conditional-write verdict (StoreId): still true"),
    "s3result.results.precondition:_failed": ("kept", "a failed probe's backoff (StoreId): the store is the same"),
    "s3result.results.precondition:_lock": ("renewed", "one probe at a time per process"),
    "s3result.results.store:_etags": ("emptied", "the ETags this process wrote: a child's writes are its own"),
    # -- the worker's signals --
    "s3result.worker:_store_checked": ("kept", "apps whose store was checked at start: checked for the child too"),
    "s3result.worker:_apps": ("kept", "apps whose signals are connected (weakly): connected once"),
    "s3result.worker:_backend_class": ("kept", "the backend class the signals build"),
    "s3result.worker:_retake_at": ("kept", "when the failed start check is taken again"),
    "s3result.worker:_retake_failures": ("kept", "how many start checks failed in a row"),
    "s3result.worker:_RETAKE_BACKOFF": ("constant", "a Backoff: a config, a sleep and a random source"),
    # -- chords/ --
    "s3result.chords.commit:_lock": ("renewed", "guards the group commits"),
    "s3result.chords.commit:_slots": ("emptied", "commits in flight: their threads stayed in the parent"),
    "s3result.chords.memory:_chord_sizes_lock": ("renewed", "guards what the process remembers of chords"),
    "s3result.chords.memory:_chord_sizes": ("kept", "a group never changes size"),
    "s3result.chords.memory:_decisions": ("kept", "native or chord_unlock, decided when the chord was applied"),
    "s3result.chords.memory:_bodies": ("kept", "the body to fail if a chord's size cannot be recorded"),
    # -- waits/ --
    "s3result.waits.notify:_kinds": ("kept", "which broker an app's connection is (it does not change)"),
    "s3result.waits.notify:_said": ("kept", "what was logged once per process"),
    "s3result.waits.notifylistener:RECONNECT": ("constant", "a frozen RetryConfig"),
    "s3result.waits.notifyregistry:_lock": ("renewed", "guards who the process listens for"),
    "s3result.waits.notifyregistry:_listeners": ("emptied", "the parent's listeners own the parent's sockets"),
    "s3result.waits.notifyregistry:_senders": ("emptied", "the reply_to queues the parent's threads sent with"),
    "s3result.waits.notifyregistry:_inherited": ("kept", "the parent's listeners, kept unused until closed"),
}
