"""What this process remembers of the chords it applied and counted: bounded, process-wide tables.

The producer's decision for each group (native or chord_unlock), the body of a native chord
until its size is recorded, and chord sizes learnt from saved groups. Process-wide, because
Celery gives each thread its own backend instance; bounded, oldest first; the lock renewed in
a forked child. Used by ``engine``.
"""

from __future__ import annotations

import threading
from typing import Any

from ..s3.forks import on_fork_in_child

__all__ = ("known_size", "remember_decision", "remember_size", "take_body")

# Chord sizes learnt from saved groups, oldest first; a group never changes size. Process-wide,
# because Celery gives each thread its own backend instance.
_chord_sizes: dict[str, int] = {}
_chord_sizes_lock = threading.Lock()
_CHORD_SIZES_KEPT = 1024

# Whether this process applied a group as a native chord (True) or with chord_unlock (False).
_decisions: dict[str, bool] = {}
# The body of each native chord this process applied, until its size is recorded: if that
# fails, the body is failed with the cause (the parts already published can never fire it).
_bodies: dict[str, Any] = {}


def _keep(table: dict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    while len(table) > _CHORD_SIZES_KEPT:
        table.pop(next(iter(table)))


def remember_decision(group_id: str, native: bool | None = None, body: Any = None) -> bool | None:
    """Record (or, without ``native``, look up) this process's decision for a chord's group."""
    with _chord_sizes_lock:
        if native is None:
            return _decisions.get(group_id)
        _keep(_decisions, group_id, native)
        if native and body is not None:
            _keep(_bodies, group_id, body)
        return native


def take_body(group_id: str) -> Any:
    """The body remembered for a native chord applied here (once), or None."""
    with _chord_sizes_lock:
        return _bodies.pop(group_id, None)


def known_size(group_id: str) -> int | None:
    """The size of a chord's group learnt here from its saved group, or None."""
    with _chord_sizes_lock:
        return _chord_sizes.get(group_id)


def remember_size(group_id: str, size: int) -> None:
    """Keep a group's size (a group never changes size); the oldest go past the bound."""
    with _chord_sizes_lock:
        _keep(_chord_sizes, group_id, size)


def _after_fork_in_child() -> None:
    global _chord_sizes_lock
    _chord_sizes_lock = threading.Lock()  # a fork may have copied it held


on_fork_in_child(_after_fork_in_child)
