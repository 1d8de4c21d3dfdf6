"""Locks that a fork never leaves held in the child.

``os.fork()`` copies a process with only the calling thread. A lock another thread held at
that moment is copied held, and nobody in the child will ever release it: the child's first
request would wait forever (prefork after a thread pool, a fork from a threaded web app).
Objects register the attributes that hold their locks; after a fork, the child gets new,
free locks in their place. Registration is weak, so it keeps nothing alive. Stdlib only.
"""

from __future__ import annotations

import os
import threading
import weakref

__all__ = ["renew_locks_after_fork"]

# Owner -> names of its lock attributes. WeakKeyDictionary: an owner that goes away leaves.
_owners: weakref.WeakKeyDictionary[object, tuple[str, ...]] = weakref.WeakKeyDictionary()
_owners_lock = threading.Lock()


def renew_locks_after_fork(owner: object, *names: str) -> None:
    """After a fork, give ``owner`` a new ``threading.Lock`` in each attribute of ``names``."""
    with _owners_lock:
        _owners[owner] = _owners.get(owner, ()) + names


def _after_fork_in_child() -> None:
    global _owners_lock
    _owners_lock = threading.Lock()  # it may itself have been held by another thread
    for owner, names in list(_owners.items()):
        for name in names:
            setattr(owner, name, threading.Lock())


os.register_at_fork(after_in_child=_after_fork_in_child)
