"""Turns: the parts of a small chord that end together store their results one row after another.

A compare-and-swap lost to another writer costs a GET and a PUT for nothing, and its losers race
again. A small chord's parts all end within milliseconds on a fleet of more processes than parts
(10 instant parts on 24 processes), and they count in the same few leaves: without turns, 10
parts cost 4.6-5.2 requests each against ``chord_unlock``'s 4.2 on 2 x prefork 12 at 20 ms a
request; in turn, 4.0 (``benchmarks/RESULTS.md``).

DESIGN notes (why it is built this way):

- Before the result is stored, never after. A part waits its turn *before* its result's PUT.
  A pool process killed in that wait dies as one killed while the task ran: Celery reports the
  part lost (or delivers it again) and the chord ends. A wait after the PUT left the chord
  PENDING for good: Celery acknowledges a part whose SUCCESS was stored before its process was
  lost, and nobody counted it. A thread waits once per task (a store that Celery retries after a
  lost reply may have stored the result already). Nothing waits above the leaves: the columns'
  last rows take turns of their own instead (``turns_ahead``), so the parts that complete the
  leaves reach the node above one after another.
- Only where parts run side by side. The wait is blind (reading first to know would cost the
  GET the turn saves), so a thread waits only in a prefork pool's process (its siblings run the
  chord's other parts with it) or when one of its counts in a chord tree lost a race, or found
  parts before its own still to count, in the last ``CONTENDED_S`` seconds. A solo pool, a
  threads pool (its threads count together: ``counter.group_commit``) and workers of one
  process wait only once they have seen their parts race.
- A schedule per thread. A part's turn counts from its thread's first part of the chord: the
  first parts a fleet takes end together, and a thread's later parts, already spaced by its
  earlier ones, wait only for what is left of their turn. A thread that came to the chord busy
  (idle for ``IDLE_TURNS`` turns or less before its first part: tasks back to back) takes no
  turns in it: in a burst of small chords on a few processes the waits cost more time than the races
  they save cost requests. The wait is bounded: the rows of a
  leaf (about ``SMALL_LEAF``) plus a turn per leaf for the last rows, at most 10 turns (1.2 s).
- Never against a time limit. A part with a time limit (its own, its task's, the worker's
  configuration or its pool's ``--time-limit`` / ``--soft-time-limit``)
  does not wait: the wait would count in its run time, and a limit striking in the wait or in
  the count after it would fail a part whose work was done in time.
- How long. One turn is ``TURN_FACTOR`` times the thread's last result PUT on the store (a GET
  and a PUT fit in it, with room for parts that ended a little apart), rounded up to a power of
  two so that the parts of one chord agree on it (with each part's own figure, 25 and 48 ms PUTs
  put turn 8 of one part on turn 5 of another), at most ``MAX_TURN_S``. A thread that has stored
  no result yet does not wait.
- Mixed versions. Nothing on the wire changes: a worker that knows no turns counts the same
  chords without waiting (more races, the same result).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from ..s3.retry import sleep
from .geometry import TURNS_MAX, Geometry, PartClash
from .state import marking

__all__ = (
    "CHORDS_KEPT",
    "CONTENDED_S",
    "IDLE_TURNS",
    "MAX_TURN_S",
    "MIN_TURN_S",
    "TURN_FACTOR",
    "Turns",
    "turn_s",
    "turns_ahead",
    "wait",
)

logger = logging.getLogger(__name__)

#: One turn, in result PUTs: a GET and a PUT, with a little to spare.
TURN_FACTOR = 3.0
#: The shortest and longest turn (a local store; a PUT that was retried).
MIN_TURN_S, MAX_TURN_S = 2.0**-9, 0.12
#: The chords each thread remembers having run a part of (the newest ones).
CHORDS_KEPT = 16
#: A thread waits its turns for this long after one of its counts lost a race.
CONTENDED_S = 600.0
#: A thread takes turns in a chord only if it was idle for more than this many turns before its
#: first part of the chord (``Turns._came_idle``), as a fleet waiting for a chord's parts is.
IDLE_TURNS = 2


def turn_s(took: float) -> float:
    """One turn on a store where a result PUT took ``took`` seconds (a power of two, capped)."""
    wanted = max(TURN_FACTOR * took, MIN_TURN_S)
    return min(2.0 ** math.ceil(math.log2(wanted)), MAX_TURN_S)


def turns_ahead(tree: Geometry, index: int) -> int:
    """The turns after the chord's start that part ``index`` stores its result in: its row in
    its leaf; 0 outside a small chord (``TURNS_MAX``) of one leaf per column (``Geometry.fit``).

    A column's last row completes its leaf and counts it in the node above, so the last rows take
    one turn each after the longest column's last row: their place among the node's children,
    plus, under an inner node, the inner node's place among the root's (its last child then
    reaches the root in a turn of its own).
    """
    rows = -(-tree.n // tree.stripes)
    if tree.n > TURNS_MAX or tree.height > 2 or tree.fill != tree.stripes * rows or not 0 <= index < tree.n:
        return 0  # a larger chord: its leaves' rows are reached along it, not together
    row, column = divmod(index, tree.stripes)
    if row < (tree.n - 1 - column) // tree.stripes:
        return row
    if tree.height == 1:  # the last rows in index order, each a turn after the one before
        turn = -1
        for last in range(max(0, tree.n - tree.stripes), index + 1):
            turn = max(last // tree.stripes, turn + 1)
        return turn
    leaf = tree.leaf_of(index)  # height 2: its place under its inner node, plus the node's under the root
    parent = tree.parent(leaf)
    return rows - 1 + tree.expected(1, parent).index(str(leaf)) + tree.expected(2, 0).index(str(parent))


def wait(sleep: Callable[[float], None], seconds: float) -> None:
    """Wait ``seconds`` for a turn. A soft time limit that strikes meanwhile ends the wait: the
    part's work is done, and raising it would fail the part (and the chord) over a wait of ours."""
    if seconds <= 0:
        return
    try:
        sleep(seconds)
    except SoftTimeLimitExceeded:
        logger.warning("s3result: a chord part's soft time limit struck while it waited its turn; it is stored now")


class Turns:
    """The turns of a backend (Celery keeps one per thread): its last result PUT's time, when
    its counts last lost a race, the chords each thread ran parts of; and each thread's last
    final write (whether the run stored it: ``stored_first``)."""

    def __init__(self, sleep: Callable[[float], None] = sleep) -> None:
        self._sleep = sleep
        self._local = threading.local()
        #: Seconds the last final-state PUT took (None: none stored yet).
        self.put_s: float | None = None
        #: When a count in a chord tree last lost a race (``time.monotonic()``).
        self.contended_at = -math.inf
        #: False: no part waits (``S3Backend.chord_turns``).
        self.enabled = True
        #: Whether this process is one of a prefork pool's: turns from the first chord on.
        self.pooled: Callable[[], bool] = lambda: False
        #: The calling thread's idle time before its current task (None: unknown).
        self.idle_before: Callable[[], float | None] = lambda: None
        #: Whether the worker's pool enforces time limits of its own (``--time-limit``).
        self.time_limited: Callable[[], bool] = lambda: False

    def contended(self) -> None:
        """A count in a chord tree lost a race: the parts of this fleet's chords end together."""
        self.contended_at = time.monotonic()

    def note_write(self, task_id: str, stored: bool, took: float) -> None:
        """This thread stored a final state for ``task_id`` in ``took`` seconds (``stored``: this
        write put it there, a run before did not)."""
        self._local.final = (task_id, stored)
        self._local.stored_at = time.monotonic()
        self.put_s = took

    def stored_first(self, task_id: str) -> bool:
        """Whether this run stored the part's final state itself (a first run, never a late one)."""
        noted, self._local.final = getattr(self._local, "final", None), None
        return noted == (task_id, True)

    def began(self, group_id: str, now: float) -> tuple[float, bool]:
        """When this thread's first part of chord ``group_id`` came to be stored (``now`` if this
        is it), and whether the thread came to it idle (``_came_idle``). A thread that runs tasks back to back (a burst of chords on a
        few processes) takes no turns: each wait would be time taken from the next part, and its
        parts race little (20 chords of 12 on 1 x prefork 4 with every thread in turn: 11.5 s
        against 7.0 s without turns, for 3.99 requests per part against 4.06). It remembers the last ``CHORDS_KEPT`` chords: a
        thread that takes two chords' parts in turn (A0 B0 A1 B1) keeps each chord's start."""
        kept: OrderedDict[str, tuple[float, bool]] | None = getattr(self._local, "kept", None)
        if kept is None:
            kept = self._local.kept = OrderedDict()
        first = kept.pop(group_id, None)
        if first is None:
            first = (now, self._came_idle(now))
        kept[group_id] = first  # the newest last: the oldest goes first
        if len(kept) > CHORDS_KEPT:
            kept.popitem(last=False)
        return first

    def _came_idle(self, now: float) -> bool:
        """Whether the thread was idle for more than ``IDLE_TURNS`` turns before its current task
        (in a worker: from its last task's end to this one's start; elsewhere: since its last
        result was stored)."""
        if self.put_s is None:
            return True
        gap = self.idle_before()
        if gap is None:
            stored_at = getattr(self._local, "stored_at", None)
            gap = math.inf if stored_at is None else now - stored_at
        return gap > IDLE_TURNS * turn_s(self.put_s)

    def wait_s(self, tree: Geometry, index: int, group_id: str, now: float) -> float:
        """How long this part waits before its result's PUT: until its turn, counted from its
        thread's first part of the chord (0: its turn has passed, the part is outside a small
        chord's leaves, its thread came to the chord busy, no race was lost lately outside a
        prefork pool, or no PUT was measured yet)."""
        began, idle = self.began(group_id, now)
        ahead = turns_ahead(tree, index)
        if ahead == 0 or not idle or self.put_s is None:
            return 0.0
        if now - self.contended_at > CONTENDED_S and not self.pooled():
            return 0.0
        return max(0.0, began + ahead * turn_s(self.put_s) - now)

    def before_store(self, request: Any, app: Any) -> None:
        """Wait for this part's turn (``_turn``), unless it has a time limit (in its request, its
        task or ``app``'s configuration); a failure here is logged, and the result stored."""
        if not self.enabled:
            return
        try:
            conf, task = app.conf, app.tasks.get(getattr(request, "task", None) or "")
            limits = (*(getattr(request, "timelimit", None) or ()), conf.task_time_limit, conf.task_soft_time_limit)
            limited = any(limits) or self.time_limited()
            if not limited and not (task is not None and (task.time_limit or task.soft_time_limit)):
                self._turn(request)
        except Exception:  # noqa: BLE001 - the turn saves requests; the result must be stored
            logger.warning("s3result: a chord part's turn failed; its result is stored now", exc_info=True)

    def _turn(self, request: Any) -> None:
        """Wait for this part's turn, if it is a first run of a native small chord's part: a
        redelivery, an eager call (no fleet with it) or a second store of the same task (Celery
        retrying a lost reply) stores at once."""
        mark = marking(getattr(request, "chord", None))
        group_id, index = getattr(request, "group", None), getattr(request, "group_index", None)
        if mark is None or not mark["native"] or not group_id or type(index) is not int:
            return
        delivery = getattr(request, "delivery_info", None)
        if getattr(request, "is_eager", False) or (isinstance(delivery, dict) and delivery.get("redelivered")):
            return
        task_id = getattr(request, "id", None)
        if task_id is not None and getattr(self._local, "waited", None) == task_id:
            return
        self._local.waited = task_id
        try:
            tree = Geometry.from_mark(mark)
        except PartClash:
            return  # the count says so, on the body
        if tree is not None:
            wait(self._sleep, self.wait_s(tree, index, str(group_id), time.monotonic()))
