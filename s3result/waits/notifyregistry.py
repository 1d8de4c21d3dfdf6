"""Who this process listens for: the reply channels it sent tasks with, and its listeners.

Process-wide, one entry per app (and broker): every thread of a process sends with its own
``reply_to`` and shares one listener. A forked child starts with neither: the parent's
listeners are kept, never closed (their sockets are the parent's), and never used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..s3.forks import on_fork_in_child

__all__ = ["MAX_SENDERS", "Stoppable", "forget", "listener", "replace_listener", "sent_from", "senders"]

#: Reply channels one process listens on at most (one per thread that sent tasks).
MAX_SENDERS = 1024


class Stoppable(Protocol):
    """A listener, as the registry sees it."""

    def stop(self) -> None: ...


L = TypeVar("L", bound=Stoppable)

_lock = threading.Lock()
_listeners: dict[tuple[int, str], Any] = {}
_senders: dict[int, set[str]] = {}
# Listeners of a parent process, kept (never closed: their sockets are the parent's) after a fork.
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _inherited.extend(_listeners.values())
    _listeners.clear()
    _senders.clear()


on_fork_in_child(_after_fork_in_child)


def sent_from(app: Any, reply_to: str) -> None:
    """Record a ``reply_to`` this process sends tasks with (called for every task sent).

    One per sending thread (Celery's ``thread_oid``); past ``MAX_SENDERS`` (a server that makes a
    thread per request), the tasks of new threads are not listened for: their waits poll.
    """
    found = _senders.get(id(app))
    if found is None:
        with _lock:
            found = _senders.setdefault(id(app), set())
    if reply_to not in found and len(found) < MAX_SENDERS:
        found.add(reply_to)


def senders(app: Any) -> set[str]:
    """The reply channels this process sent ``app``'s tasks with (empty: nobody would notify it)."""
    return _senders.get(id(app), set())


def listener(key: tuple[int, str]) -> Any:
    """The listener of an app and broker (``notify``'s key), or None."""
    return _listeners.get(key)


def replace_listener(key: tuple[int, str], make: Callable[[], L]) -> L:
    """The listener of ``key``, made under the lock if missing; the app's listeners of another broker stop."""
    with _lock:
        found: L | None = _listeners.get(key)
        if found is None:
            for old in [k for k in _listeners if k[0] == key[0]]:
                _listeners.pop(old).stop()  # the app was pointed at another broker
            found = _listeners[key] = make()
        return found


def forget(stopped: Stoppable) -> None:
    """Drop a listener that stopped."""
    for key, found in list(_listeners.items()):
        if found is stopped:
            _listeners.pop(key, None)
