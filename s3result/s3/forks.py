"""The process's one fork registry: what a forked child renews, in one documented order.

``os.fork()`` copies a process with only the calling thread. A lock another thread held at
that moment is copied held, and nobody in the child will ever release it: the child's first
request would wait forever (prefork after a thread pool, a fork from a threaded web app). State
a parent's threads were in the middle of (turns reserved, commits in flight, listeners on the
parent's sockets) is not the child's either.

This module is the only place that calls ``os.register_at_fork``; every other module registers
here. In the child, in this order:

1. this registry's own lock is replaced;
2. every lock attribute registered with ``renew_locks_after_fork`` gets a new, free
   ``threading.Lock`` (so that step 3 may take any of them);
3. every callback registered with ``on_fork_in_child`` runs, in the order registered: module
   callbacks register at import, so a lower layer (``s3/``) renews before the layers above it.

Owners and bound methods are held weakly: registering keeps nothing alive. Stdlib only.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from types import MethodType

__all__ = ["on_fork_in_child", "renew_locks_after_fork"]

# Owner -> names of its lock attributes. WeakKeyDictionary: an owner that goes away leaves.
_owners: weakref.WeakKeyDictionary[object, tuple[str, ...]] = weakref.WeakKeyDictionary()
# Child-side callbacks in registration order: a function, or a weak reference to a bound method.
_callbacks: list[Callable[[], None] | weakref.WeakMethod[Callable[[], None]]] = []
_lock = threading.Lock()


def renew_locks_after_fork(owner: object, *names: str) -> None:
    """After a fork, give ``owner`` a new ``threading.Lock`` in each attribute of ``names``."""
    with _lock:
        _owners[owner] = _owners.get(owner, ()) + names


def on_fork_in_child(callback: Callable[[], None]) -> None:
    """Run ``callback`` in a forked child, after the locks are renewed (a bound method: weakly)."""
    entry: Callable[[], None] | weakref.WeakMethod[Callable[[], None]] = (
        weakref.WeakMethod(callback) if isinstance(callback, MethodType) else callback
    )
    with _lock:
        _callbacks[:] = [c for c in _callbacks if not (isinstance(c, weakref.WeakMethod) and c() is None)]
        _callbacks.append(entry)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # it may itself have been held by another thread
    for owner, names in list(_owners.items()):
        for name in names:
            setattr(owner, name, threading.Lock())
    for entry in list(_callbacks):
        callback = entry() if isinstance(entry, weakref.WeakMethod) else entry
        if callback is not None:
            callback()


os.register_at_fork(after_in_child=_after_fork_in_child)
