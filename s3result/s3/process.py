"""What the process shares, and what a forked child gets of it: one owner, one fork registry.

Celery gives every thread (and greenlet) its own backend instance, so what the threads of a
process share cannot live on the backend: a client per settings, the pacers of a store, the
conditional-write verdict, the ETags this process wrote, chord commits in flight, notification
listeners. It lives here instead, in *slots* of the one owner, ``PROCESS``. A slot is declared
once, at import, by the module that uses it, with what a forked child gets of it and why::

    ETAGS = PROCESS.store_slot("results.etags", EtagMemory, key=StoreId, fork="emptied", why="...")
    ETAGS.get(store_id).put(key, etag)

A slot is process-wide (``Slot.get()``) or per store (``StoreSlot.get(store_id)``: one value per
``StoreId``, the type the declaring module hands in as ``key``). A value is made on first use,
under the owner's one lock; a read takes no lock (a dict read is atomic), so the hot path costs
one dict lookup.

``os.fork()`` copies a process with only the calling thread: a lock another thread held is copied
held, and nobody in the child will ever release it (the child's first request would wait
forever: prefork after a thread pool, a fork from a threaded web app). Work of the parent's
threads (turns reserved, commits in flight, listeners on the parent's sockets) is not the
child's either. So each slot says its fate in a forked child:

- ``renewed``: a lock; the child gets a new, free one on its first ``get()``.
- ``emptied``: work of the parent's threads; the child starts from a new, empty value. With
  ``hold=True`` the parent's values are kept referenced, never used nor closed (a listener's
  finalizer would act on the parent's sockets).
- ``kept``: a fact still true in the child (a verdict, a client whose pool is keyed by PID):
  the same object. ``after_fork`` runs on each value in the child (a pacer drops the turns the
  parent's threads reserved).

This module is also the one fork registry: the only place that calls ``os.register_at_fork``.
An object that owns a lock of its own (a client, a pool, a credential source) registers it with
``renew_locks_after_fork``; a module with something else to do in a child registers a callback
with ``on_fork_in_child``. In the child, in this order:

1. the owner's lock is replaced;
2. every lock attribute registered with ``renew_locks_after_fork`` gets a new, free
   ``threading.Lock`` (so that the next steps may take any of them);
3. every slot meets its fate, in the order declared (import order: ``s3/`` before ``results/``,
   then ``waits/`` and ``chords/``, then the worker);
4. every callback registered with ``on_fork_in_child`` runs, in the order registered.

A slot or callback that raises is logged, and the steps after it still run.

Owners and bound methods are held weakly: registering keeps nothing alive. Stdlib only, so that
a module reading a slot or registering a lock is no deeper in the import chain for it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Hashable
from types import MethodType
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "FATES",
    "PROCESS",
    "Fate",
    "ProcessState",
    "Slot",
    "StoreSlot",
    "on_fork_in_child",
    "renew_locks_after_fork",
]

Fate = Literal["renewed", "emptied", "kept"]
#: Every fate, in the words of the module docstring.
FATES: tuple[Fate, ...] = ("renewed", "emptied", "kept")

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
_SlotT = TypeVar("_SlotT", bound="_Slot[Any, Any]")


class _Slot(Generic[K, T]):
    """One piece of shared state: its name, fate at a fork and why, and its values by key."""

    __slots__ = ("_after_fork", "_hold", "_make", "_owner", "_values", "fork", "name", "why")

    def __init__(
        self,
        owner: ProcessState,
        name: str,
        make: Callable[[], T],
        *,
        fork: Fate,
        why: str,
        after_fork: Callable[[T], None] | None,
        hold: bool,
    ) -> None:
        if fork not in FATES:
            raise ValueError(f"slot {name!r}: fork={fork!r}, expected one of {', '.join(FATES)}")
        if after_fork is not None and fork != "kept":
            raise ValueError(f"slot {name!r}: after_fork runs on kept values only (fork={fork!r})")
        if hold and fork != "emptied":
            raise ValueError(f"slot {name!r}: hold keeps the parent's values of an emptied slot (fork={fork!r})")
        self._owner = owner
        self.name = name
        self.fork: Fate = fork
        self.why = why
        self._make = make
        self._after_fork = after_fork
        self._hold = hold
        self._values: dict[K, T] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fork={self.fork!r}, values={len(self._values)})"

    def values(self) -> dict[K, T]:
        """The values made so far, by key (None for a process-wide slot): a copy."""
        return dict(self._values)

    def forget(self) -> None:
        """Drop every value: the next ``get()`` makes a new one (a test's fresh start)."""
        with self._owner.lock:
            self._values = {}

    def _made(self, key: K) -> T:
        """The value of ``key``, made under the owner's lock if nobody made it meanwhile (cold path)."""
        with self._owner.lock:
            values = self._values
            if key not in values:
                values[key] = self._make()
            return values[key]

    def after_fork_in_child(self) -> None:
        """Meet this slot's fate in a forked child (only the forking thread runs)."""
        if self.fork == "kept":
            if self._after_fork is not None:
                for value in list(self._values.values()):
                    self._after_fork(value)
            return
        if self._hold:
            self._owner.held.extend(self._values.values())
        self._values = {}


class Slot(_Slot[None, T]):
    """Process-wide: one value for the process."""

    __slots__ = ()

    def get(self) -> T:
        """The process's value, made on first use."""
        try:
            return self._values[None]
        except KeyError:
            return self._made(None)


class StoreSlot(_Slot[K, T]):
    """Per store: one value for each store the process talks to (``K``: ``StoreId``)."""

    __slots__ = ("key",)

    def __init__(
        self,
        owner: ProcessState,
        name: str,
        make: Callable[[], T],
        key: type[K],
        *,
        fork: Fate,
        why: str,
        after_fork: Callable[[T], None] | None,
        hold: bool,
    ) -> None:
        super().__init__(owner, name, make, fork=fork, why=why, after_fork=after_fork, hold=hold)
        #: The type of a store's identity: a value made for anything else is refused.
        self.key = key

    def get(self, store: K) -> T:
        """The value for ``store``, made on first use."""
        try:
            return self._values[store]
        except KeyError:
            pass
        if not isinstance(store, self.key):
            raise TypeError(f"slot {self.name!r} is per store: get() takes a {self.key.__name__}, not {store!r}")
        return self._made(store)


class ProcessState:
    """The owner of every slot and of the fork registry: applies every fate in a forked child.

    ``held``: the parent's values of emptied slots declared with ``hold=True``, never used.
    """

    def __init__(self) -> None:
        #: Taken to make a value, to declare or register; reentrant, so a value's maker may read another slot.
        self.lock = threading.RLock()
        self._slots: dict[str, _Slot[Any, Any]] = {}
        self.held: list[object] = []
        # Owner -> names of its lock attributes. WeakKeyDictionary: an owner that goes away leaves.
        self._owners: weakref.WeakKeyDictionary[object, tuple[str, ...]] = weakref.WeakKeyDictionary()
        # Child-side callbacks in registration order: a function, or a weak reference to a bound method.
        self._callbacks: list[Callable[[], None] | weakref.WeakMethod[Callable[[], None]]] = []

    def slot(
        self,
        name: str,
        make: Callable[[], T],
        *,
        fork: Fate,
        why: str,
        after_fork: Callable[[T], None] | None = None,
        hold: bool = False,
    ) -> Slot[T]:
        """Declare a process-wide slot (once, at import, by the module that uses it)."""
        return self._declare(Slot(self, name, make, fork=fork, why=why, after_fork=after_fork, hold=hold))

    def store_slot(
        self,
        name: str,
        make: Callable[[], T],
        *,
        key: type[K],
        fork: Fate,
        why: str,
        after_fork: Callable[[T], None] | None = None,
        hold: bool = False,
    ) -> StoreSlot[K, T]:
        """Declare a per-store slot: one value per store identity (``key``: ``StoreId``)."""
        return self._declare(StoreSlot(self, name, make, key, fork=fork, why=why, after_fork=after_fork, hold=hold))

    def _declare(self, slot: _SlotT) -> _SlotT:
        with self.lock:
            if slot.name in self._slots:
                raise ValueError(f"slot {slot.name!r} is declared twice: one module owns it")
            self._slots[slot.name] = slot
        return slot

    def slots(self) -> list[_Slot[Any, Any]]:
        """Every slot declared, in the order declared (the order of their fates at a fork)."""
        return list(self._slots.values())

    def renew_locks_after_fork(self, owner: object, *names: str) -> None:
        """After a fork, give ``owner`` a new ``threading.Lock`` in each attribute of ``names``."""
        with self.lock:
            self._owners[owner] = self._owners.get(owner, ()) + names

    def on_fork_in_child(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in a forked child, after the locks and slots (a bound method: weakly)."""
        entry: Callable[[], None] | weakref.WeakMethod[Callable[[], None]] = (
            weakref.WeakMethod(callback) if isinstance(callback, MethodType) else callback
        )
        with self.lock:
            self._callbacks[:] = [c for c in self._callbacks if not (isinstance(c, weakref.WeakMethod) and c() is None)]
            self._callbacks.append(entry)

    def after_fork_in_child(self) -> None:
        """In a forked child, the four steps of the module docstring, in their order.

        A step that raises is logged and the others still run: one broken slot or callback must
        not leave the next one's lock held by a thread the child does not have (its first request
        would wait forever), and ``os.register_at_fork`` would only print the error and go on.
        """
        self.lock = threading.RLock()  # another thread may have held it at the fork
        for owner, names in list(self._owners.items()):
            for name in names:
                setattr(owner, name, threading.Lock())
        for slot in list(self._slots.values()):
            _guarded(slot.after_fork_in_child, f"slot {slot.name!r}")
        for entry in list(self._callbacks):
            callback = entry() if isinstance(entry, weakref.WeakMethod) else entry
            if callback is not None:
                _guarded(callback, f"fork callback {callback!r}")


def _guarded(step: Callable[[], None], what: str) -> None:
    """Run one step of a child's fork handling; log what it raised instead of stopping the rest."""
    try:
        step()
    except Exception:
        logging.getLogger("s3result").exception("s3result: %s failed in a forked child (pid %d)", what, os.getpid())


#: The process's one owner of shared state and fork registry (the only such module global of the runtime).
PROCESS = ProcessState()
os.register_at_fork(after_in_child=PROCESS.after_fork_in_child)


def renew_locks_after_fork(owner: object, *names: str) -> None:
    """After a fork, give ``owner`` a new ``threading.Lock`` in each attribute of ``names``."""
    PROCESS.renew_locks_after_fork(owner, *names)


def on_fork_in_child(callback: Callable[[], None]) -> None:
    """Run ``callback`` in a forked child, after the locks are renewed and the slots met their fates."""
    PROCESS.on_fork_in_child(callback)
