"""Turns: the parts that reach one tree node at the same moment write it one after another.

A compare-and-swap lost to another writer costs a GET and a PUT for nothing, and its losers
race again. Where a chord's parts are known to reach a node together, each waits, before its
first read, for the writers due before it: ``position * turn``, where ``position`` is its place
among the node's expected members and ``turn`` one read and one write on this store, as this
part measured it.

DESIGN notes (why it is built this way):

- Where. A chord of up to ``TURNS_MAX`` parts ends within a wave or two of the fleet (10
  instant parts on 24 processes end within milliseconds): it counts in leaves of up to
  ``ONE_LEAF_MAX`` rows, one per column (one leaf up to ``ONE_LEAF_MAX`` parts; ``Geometry.fit``),
  where each part waits for the rows before its own. Above that, a tree fitted to a chord below
  ``STAGGER_FROM`` parts has one leaf per column, and its leaves all complete with the chord's
  last row: the parts that complete them wait at the inner nodes and the root, each for the
  children before its own, where the fan-in is at most ``MAX_FAN_IN``. A leaf's rows in a larger
  tree, and every node of a staggered one, are reached along the chord, not together: a wait
  there would be latency for nothing (``cas``'s turns after a lost race are enough).
- Which order. Prefork processes take a chord's parts in ``group_index`` order, so a part's row
  in its leaf, and a leaf's place among its parent's children, is the order they come in. The
  wait is blind: a writer whose predecessors are done already waits for nothing it needed, but
  reading first to know would cost the GET the turn saves. It is bounded: at most
  ``ONE_LEAF_MAX - 1`` turns in a leaf, ``MAX_FAN_IN - 1`` at a node above. And it is a
  schedule, not a delay: a leaf's turns start when the thread's first part of the chord ended,
  so a thread that runs the chord's parts one after another (a solo pool, a worker of a few
  processes) finds the turns of its later parts passed, and waits for nothing (a blind delay per
  row made a 48-part chord on one worker of 4 processes take 6.7 s against ``chord_unlock``'s 2.5).
- How long. One turn is ``TURN_FACTOR`` times the part's own result PUT, just made on the same
  store under the same load (behind a relay 20 ms away on a busy 2-CPU box: 28-51 ms, median
  39), so a GET and a PUT fit in one turn, with room for parts that ended a little apart (at
  1.5 and 2 times, 1-2 races in 10 parts were left in some runs); at most ``MAX_TURN_S`` (a PUT
  that was retried measures the retries, not the store). The figures are in
  ``benchmarks/RESULTS.md`` (small chords in turn).
- Mixed versions. Nothing on the wire changes: a small chord's tree is a geometry every worker
  counts with the same arithmetic (the mark carries its numbers), and a worker that knows no
  turns counts the same chords without waiting (more races, the same result).
"""

from __future__ import annotations

import math
import threading

from .geometry import ONE_LEAF_MAX, STAGGER_FROM, TURNS_MAX, Geometry

__all__ = (
    "MAX_FAN_IN",
    "MAX_TURN_S",
    "MIN_TURN_S",
    "TURN_FACTOR",
    "FirstRuns",
    "Took",
    "leaf_wait_s",
    "turn_at",
    "turn_s",
)

#: One turn, in the part's own result PUTs: a GET and a PUT, with a little to spare.
TURN_FACTOR = 3.0
#: The shortest and longest turn (a local store; a PUT that was retried).
MIN_TURN_S, MAX_TURN_S = 2.0**-9, 0.12
#: Nodes above the leaves are written in turn up to this fan-in: the last of 8 children would
#: wait 7 turns, longer than the races it saves cost (at 1,000 parts the body started 1.04 s
#: after the last part against 0.75, for 3.08 requests per part against 3.14).
MAX_FAN_IN = 5


def turn_s(took: float) -> float:
    """One turn on a store where this part's result PUT took ``took`` seconds.

    Rounded up to a power of two: every part computes its turns from its own PUT, and the parts
    of one chord must agree on them (with each part's own figure, 25 and 48 ms PUTs put turn 8
    of one part on turn 5 of another, and they raced).
    """
    wanted = max(TURN_FACTOR * took, MIN_TURN_S)
    return min(2.0 ** math.ceil(math.log2(wanted)), MAX_TURN_S)


#: A first run's result PUT time, and when its thread's first part of the chord ended (its
#: ``time.monotonic()``: the chord's first parts all end about then). None for a late run (a
#: redelivery: the others are not arriving with it).
Took = tuple[float, float] | None


def leaf_wait_s(tree: Geometry, index: int, took: Took, now: float) -> float:
    """How long a part of a small chord waits before its first read of its leaf: until its turn.

    The turn of its row, in the schedule that starts when its thread's first part of the chord
    ended: in a fleet of more processes than parts, that is this part's own end, and it waits for
    the rows before its own. A thread that runs several of the chord's parts (a worker of a few
    processes; a solo pool) keeps its first part's start: a later part whose turn has passed
    while it ran, as its predecessors' did, waits for nothing.
    """
    rows = -(-tree.n // tree.stripes)
    if took is None or tree.n > TURNS_MAX or rows > ONE_LEAF_MAX or tree.fill != tree.stripes * rows:
        return 0.0  # a late run; a larger chord, whose leaves' rows are reached along it
    seconds, began = took
    return max(0.0, began + index // tree.stripes * turn_s(seconds) - now)


def turn_at(tree: Geometry, level: int, took: Took) -> float:
    """The turn at inner node ``level`` (> 0) of ``tree`` for a part ``took`` describes; 0: none."""
    if took is None or level == 0:
        return 0.0
    return turn_s(took[0]) if tree.n < STAGGER_FROM and tree.fan_in <= MAX_FAN_IN else 0.0


class FirstRuns:
    """The last final state each thread stored: for which task, whether that write was the
    first (a redelivery finds it stored already), and how long it took.

    A part's count reads it right after the backend stored the part's result: a first run's
    count needs no proof that its chord is still on, and its PUT's time sets its turn.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def began(self, group_id: str, now: float) -> float:
        """When this thread's first part of chord ``group_id`` ended (``now`` if this is it); it
        remembers one chord."""
        last = getattr(self._local, "began", None)
        if last is not None and last[0] == group_id:
            return float(last[1])
        self._local.began = (group_id, now)
        return now

    def note(self, task_id: str, stored: bool, took: float) -> None:
        self._local.value = (task_id, stored, took)

    def take(self, task_id: str) -> float | None:
        """How long this run's store of ``task_id``'s final state took; None: it stored none."""
        noted, self._local.value = getattr(self._local, "value", None), None
        return noted[2] if noted is not None and noted[:2] == (task_id, True) else None
