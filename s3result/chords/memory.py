"""What this process remembers of the chords it applied and counted: bounded, process-wide tables.

The producer's decision for each group (native or chord_unlock), the body of a native chord
until its size is recorded, and chord sizes learnt from saved groups. Process-wide, because
Celery gives each thread its own backend instance: slots of the process state (``s3.process``),
kept by a forked child (their lock renewed). Bounded, oldest first. Used by ``engine``.
"""

from __future__ import annotations

import threading
from typing import Any

from ..s3.process import PROCESS

__all__ = ("known_size", "remember_decision", "remember_size", "take_body")

_CHORD_SIZES_KEPT = 1024

# Process-wide, because Celery gives each thread its own backend instance; oldest first.
_SIZES = PROCESS.slot(
    "chords.memory.sizes",
    dict[str, int],
    fork="kept",
    why="chord sizes learnt from saved groups: a group never changes size",
)
_DECISIONS = PROCESS.slot(
    "chords.memory.decisions",
    dict[str, bool],
    fork="kept",
    why="whether this process applied a group as a native chord (True) or with chord_unlock: decided at apply",
)
# If recording a native chord's size fails, its body is failed with the cause (the parts already
# published can never fire it).
_BODIES = PROCESS.slot(
    "chords.memory.bodies",
    dict[str, Any],
    fork="kept",
    why="the body of each native chord applied here, until its size is recorded: to fail it if that fails",
)
_LOCK = PROCESS.slot("chords.memory.lock", threading.Lock, fork="renewed", why="guards what the process remembers")


def _keep(table: dict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    while len(table) > _CHORD_SIZES_KEPT:
        table.pop(next(iter(table)))


def remember_decision(group_id: str, native: bool | None = None, body: Any = None) -> bool | None:
    """Record (or, without ``native``, look up) this process's decision for a chord's group."""
    with _LOCK.get():
        if native is None:
            return _DECISIONS.get().get(group_id)
        _keep(_DECISIONS.get(), group_id, native)
        if native and body is not None:
            _keep(_BODIES.get(), group_id, body)
        return native


def take_body(group_id: str) -> Any:
    """The body remembered for a native chord applied here (once), or None."""
    with _LOCK.get():
        return _BODIES.get().pop(group_id, None)


def known_size(group_id: str) -> int | None:
    """The size of a chord's group learnt here from its saved group, or None."""
    with _LOCK.get():
        return _SIZES.get().get(group_id)


def remember_size(group_id: str, size: int) -> None:
    """Keep a group's size (a group never changes size); the oldest go past the bound."""
    with _LOCK.get():
        _keep(_SIZES.get(), group_id, size)
