"""Who this process listens for: the reply channels it sent tasks with, and its listeners.

Process-wide, one entry per app (and broker): every thread of a process sends with its own
``reply_to`` and shares one listener. Slots of the process state (``s3.process``): a forked child
starts with neither; the parent's listeners are held, never closed (their sockets are the
parent's), and never used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..s3.process import PROCESS

__all__ = ["MAX_SENDERS", "Stoppable", "forget", "listener", "replace_listener", "sent_from", "senders"]

#: Reply channels one process listens on at most (one per thread that sent tasks).
MAX_SENDERS = 1024


class Stoppable(Protocol):
    """A listener, as the registry sees it."""

    def stop(self) -> None: ...


L = TypeVar("L", bound=Stoppable)

_LOCK = PROCESS.slot("waits.registry.lock", threading.Lock, fork="renewed", why="guards who the process listens for")
# Listeners by app and broker. A child gets none; the parent's are held by the process state,
# never closed (their sockets are the parent's) and never used.
_LISTENERS = PROCESS.slot(
    "waits.registry.listeners",
    dict[tuple[int, str], Any],
    fork="emptied",
    why="the parent's listeners own the parent's sockets: held unused, never closed",
    hold=True,
)
_SENDERS = PROCESS.slot(
    "waits.registry.senders",
    dict[int, set[str]],
    fork="emptied",
    why="the reply_to queues the parent's threads sent with",
)


def sent_from(app: Any, reply_to: str) -> None:
    """Record a ``reply_to`` this process sends tasks with (called for every task sent).

    One per sending thread (Celery's ``thread_oid``); past ``MAX_SENDERS`` (a server that makes a
    thread per request), the tasks of new threads are not listened for: their waits poll.
    """
    senders = _SENDERS.get()
    found = senders.get(id(app))
    if found is None:
        with _LOCK.get():
            found = senders.setdefault(id(app), set())
    if reply_to not in found and len(found) < MAX_SENDERS:
        found.add(reply_to)


def senders(app: Any) -> set[str]:
    """The reply channels this process sent ``app``'s tasks with (empty: nobody would notify it)."""
    return _SENDERS.get().get(id(app), set())


def listener(key: tuple[int, str]) -> Any:
    """The listener of an app and broker (``notify``'s key), or None."""
    return _LISTENERS.get().get(key)


def replace_listener(key: tuple[int, str], make: Callable[[], L]) -> L:
    """The listener of ``key``, made under the lock if missing; the app's listeners of another broker stop."""
    listeners = _LISTENERS.get()
    with _LOCK.get():
        found: L | None = listeners.get(key)
        if found is None:
            for old in [k for k in listeners if k[0] == key[0]]:
                listeners.pop(old).stop()  # the app was pointed at another broker
            found = listeners[key] = make()
        return found


def forget(stopped: Stoppable) -> None:
    """Drop a listener that stopped."""
    listeners = _LISTENERS.get()
    for key, found in list(listeners.items()):
        if found is stopped:
            listeners.pop(key, None)
