"""Native chords at fleet scale: a combining tree of small counter objects.

One counter object holding the set of every part does not scale: each part rewrites it
whole (bytes per part grow with the chord) and every process of the fleet queues on one
key (~20 parts/s at 20 ms per request, whatever the fleet). A large chord therefore counts
its parts in a tree: each part adds itself to a leaf chosen by its ``group_index``; the part
that completes a leaf adds the leaf to its parent, and so on; the root is the chord's
counter object of ``rootcounter`` (``ChordCounter``), whose completing write fires the body.

DESIGN notes (why it is built this way):

- Budget. A part stores its result (1 PUT) and counts itself in its leaf (GET + PUT): 3
  requests. The join cannot then read every part's result (a 4th request per part), so a
  leaf slot carries the part's encoded result when it is small (``VALUE_MAX`` bytes, as
  Celery's Redis backend carries results in the chord's list) and the join reads the
  leaves, ~N/``fill`` GETs. A part whose result is bigger, not JSON text, or not a success
  carries none and is read on its own at join time: 3 requests per part, plus 1 for such a
  part. Slots are positional (``Geometry.expected`` says which index each is): ``0`` until
  counted, then ``FP_LEN`` hex digits of the task id's hash followed by the encoded result,
  ~10 bytes. A full leaf of 32 is ~400 bytes, so bytes per part stay a few hundred at any N
  beyond the requests' own headers (~900-1,000 bytes a request, reply included).
- Contention. Prefork processes take a chord's parts in ``group_index`` order, so consecutive
  indexes run at the same moment. Leaves of contiguous ranges would put the whole fleet on
  one leaf; leaves are stripes instead: index ``i`` is at row ``i // stripes`` and column
  ``i % stripes``, a leaf holds ``fill`` consecutive rows of one column. 32 processes at
  work touch 32 different leaves. Striped leaves would all complete at the chord's end (and
  queue on their parents then), so each column's leaves start at a different row (a phase
  of ``column * fill // stripes`` rows): leaves complete one every ``fill`` parts, all along
  the chord, and their parents (``fan_in`` children, numbered in completion order) see
  little contention. Only the last row completes ~``stripes`` leaves together; a fan-in of
  4 bounds the queue at any node to 4 writers.
- Which parts. The tree needs indexes ``0 .. n-1``, each once, and ``n`` equal to Celery's
  chord size. The producer uses it only when every header result is a plain task result
  (no nested group, no chord or chain ending in a group: Celery's ``_freeze_unroll`` then
  numbers the flattened tasks 0..n-1) and there are at least ``S3Backend.chord_tree_from``
  of them (2); other chords count in the root alone. The geometry travels in the producer's
  mark with the chord, and the producer fits it to the chord's size (``Geometry.fit``): the
  striping and stagger above from ``STAGGER_FROM`` parts; one leaf per stripe below it. A part whose index is missing or out of range, or whose
  slot another task holds (a duplicated index), fails the chord with a ChordError naming it:
  counting it anywhere would complete some leaf early or leave one open for good. A size
  that differs from ``n`` fails the chord at ``set_chord_size``, before the last part is out.
- The join's reads. Reading one leaf per 32 parts still costs the firing part ~N/32 GETs
  (at 10,000 parts, ~0.4 s of a 20 ms store's time after the last part ended). Inner nodes
  up to ``CARRY_LEVEL`` therefore carry a copy of each completed child's slots (the child is
  complete, so the copy never changes): the join reads the ~N/512 nodes of level 2, while the
  parts pay ~60 more bytes each for the copies (measured at 1,000 parts: 3,914 -> 3,972).
- Exactly once, node by node. Adding a member to a node is idempotent (a set), so below
  the root no write token is needed: a lost reply is resolved by re-reading (our slot is
  there); the member whose add completed the node is recorded (``by``), and every run of
  that member goes up (a redelivery re-adds the node to its parent: a no-op, then goes on).
  Only the root must fire once; it is the ``ChordCounter`` object, with its tokens, lease
  and take-over. Any failure to count is raised; the caller fails the body loudly.
- Late parts. A part that finds its leaf missing creates it (``If-None-Match: *``) after
  reading the root: a missing root means the chord fired and was cleaned up (the part does
  nothing and leaves nothing), a failed one that it failed. The run of a part that stored its
  final state itself (not a redelivery's, whose state was stored already) skips that read: the
  chord cannot have fired without it; and the leaf's first part then creates the leaf without
  reading it first (a fleet takes parts in order: it is usually first). A redelivery climbs through nodes that
  already count it; the clean-up may have deleted the node above (nodes go concurrently), so
  a climb that was counted already below reads the root before creating a node too (only
  redeliveries and lost replies pay that GET; the first run of a part never does).
- Clean-up. After publishing the body, the firing part deletes the root first (late parts
  then stop), then every node, concurrently, then the saved group. Nodes a crash leaves
  behind are expired by the lifecycle rule on the prefix (``s3result lifecycle --apply``).
- Losers in turn. Parts that reach one node at the same moment (a small chord whose parts all
  end together, more processes than stripes) race: each race lost costs a GET and a PUT, and
  losers drawing random waits race again. A node's slots say who is still to come: a loser waits
  one lost attempt's time per empty slot before its own (``cas``, ``Attempt.ahead``), the root's
  writers per top node not counted yet, so the losers of one race come back one after another.
  At most ``cas.MAX_AHEAD`` (3) turns: a slot before ours may belong to a part still queued
  behind a busy process, and waiting for it holds the chord back (with 8, chords of 63-64 parts
  on 2 x prefork 12 took 2.6-3.8 s instead of 1.7-2.0). Measured there (``python -m
  benchmarks.chords --sizes 63,64,63,64 --modes native --workers 2 --concurrency 12``, 20 ms a
  request): 4.03-4.19 requests per part against 4.16-4.46 with random waits, in the same time.
  A first run that reads its leaf missing while a part before it in the leaf is uncounted does
  not create it (that create loses to the leaf's first part, which creates it without reading):
  it waits its turn, a read and a write per part ahead (``cas.Yielded``). Counting a chord of 10
  on 24 processes at 20 ms a request: 4.4-4.8 requests per part against 4.9-5.3. In a prefork
  pool, or where races were seen lately (``on_race``), the parts of a chord of up to 64 take
  turns before they store their results (``turns``), and race little: 4.0 requests per part at 10.
- Threads. The threads of one process that count on the same node commit together
  (``counter.group_commit``), as on the root.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from ..results.cas import Attempt, Yielded, compare_and_swap
from ..s3.client import S3Client
from ..s3.request import PutMode
from ..s3.retry import sleep
from .commit import group_commit
from .geometry import FP_LEN, Geometry, PartClash, dump_node, load_node, node_key
from .state import CounterState

__all__ = (
    "Step",
    "TreeCounter",
)

Step = Literal["up", "wait", "late", "failed"]


#: (member, entry, whether a missing node may mean the chord was cleaned up: check the root).
Item = tuple[str, Any, bool]
#: (step, the completed node's slots with "up", whether the member was counted there already).
Done = tuple[Step, "list[Any] | None", bool]


class TreeCounter:
    """Adds members to the tree nodes of native chords on one store and bucket (``scope``)."""

    def __init__(
        self,
        client: Callable[[], S3Client],
        scope: str,
        *,
        deadline_s: float = 120.0,
        sleep: Callable[[float], None] = sleep,
    ) -> None:
        self._client = client
        self._scope = scope
        self.deadline_s = deadline_s
        self._sleep = sleep
        #: Called when an add lost a race and tries again, or finds parts before its own in its
        #: leaf still to count (``turns``: the fleet's parts end together).
        self.on_race: Callable[[], None] | None = None

    def add(self, root_key: str, geometry: Geometry, level: int, node: int, member: str, entry: Any) -> Step:
        """Add ``member`` (with ``entry``) to a node; "up" for the member whose add completed it.

        "late": the chord's root is gone (it fired and was cleaned up); "failed": it was failed.
        """
        return self.add_and_read(root_key, geometry, level, node, member, entry)[0]

    def add_and_read(
        self,
        root_key: str,
        geometry: Geometry,
        level: int,
        node: int,
        member: str,
        entry: Any,
        again: bool = False,
        first: bool = False,
    ) -> Done:
        """``add``, the completed node's slots with "up" (the parent may carry them), and whether
        ``member`` was counted in the node already (a redelivery, or our reply lost).

        ``again``: the member was counted already in the node below. A missing node then may be
        one the firing part's clean-up deleted (a redelivery climbing late): the root is read
        before creating it, as for a leaf, so a late climb leaves nothing behind. ``first``:
        this is a leaf and this run of the part is the one that stored its final state, so the
        chord cannot have ended without it: a missing leaf is created without reading the root.
        """
        key = node_key(root_key, level, node)
        expected = geometry.expected(level, node)
        # The leaf's first part, in a first run, is usually the first to reach it (a fleet takes
        # parts in order): it creates the leaf without reading it first, one request less.
        create = level == 0 and first and member == expected[0]
        return group_commit(
            ("node", self._scope, key),
            (member, entry, (level == 0 and not first) or again),
            lambda batch: self._swap(root_key, key, level, expected, batch, create and len(batch) == 1),
        )

    def _root_state(self, root_key: str) -> Step | None:
        found = self._client().get_or_none(root_key)
        if found is None:
            return "late"
        return "failed" if CounterState.load(found.body).failed is not None else None

    def _swap(
        self, root_key: str, key: str, level: int, expected: Sequence[str], batch: list[Item], create: bool = False
    ) -> list[Done]:
        """Add ``batch`` to the node; ``create``: try creating it before reading it (once)."""

        def once(cas: Attempt) -> list[Done]:
            if cas.lost and self.on_race is not None:
                self.on_race()  # the attempt before lost a race (or yielded to a writer due first)
            return self._swap_once(cas, root_key, key, level, expected, batch, create and cas.number == 1)

        return compare_and_swap(key, once, deadline_s=self.deadline_s, sleep=self._sleep)

    def _swap_once(
        self,
        cas: Attempt,
        root_key: str,
        key: str,
        level: int,
        expected: Sequence[str],
        batch: list[Item],
        create: bool = False,
    ) -> list[Done]:
        """One read and (when something is new) one conditional write; a lost race raises.

        ``create``: no read, the node is taken to be missing; if it exists, the create fails
        the precondition and the next attempt reads it.
        """
        client = self._client()
        current = None if create else client.get_or_none(key)
        cas.read(None if current is None else current.etag)
        where = {m: k for k, m in enumerate(expected)}
        if current is None and cas.number == 1 and level == 0:
            self._yield_to_the_creator(cas, key, where, batch)
        if current is None:
            if any(check for _m, _e, check in batch):
                ended = self._root_state(root_key)
                if ended is not None:
                    return [(ended, None, False)] * len(batch)
            node: dict[str, Any] = {"v": 3, "m": [0] * len(expected)}
        else:
            node = load_node(current.body)
        slots: list[Any] = node["m"]
        if len(slots) != len(expected):
            raise ValueError(f"tree node {key!r} holds {len(slots)} slots, the chord's geometry says {len(expected)}")
        fresh: list[str] = []
        for member, entry, _check in batch:
            slot = where.get(member)
            if slot is None:
                raise PartClash(f"{member!r} is not counted in tree node {key!r}")
            held = slots[slot]
            if not held:
                slots[slot] = entry
                fresh.append(member)
            elif level == 0 and str(held)[:FP_LEN] != str(entry)[:FP_LEN]:
                raise PartClash(
                    f"part index {member} is held by another task (fingerprint {str(held)[:FP_LEN]}, "
                    f"ours {str(entry)[:FP_LEN]}): a duplicated group_index"
                )
        if fresh:
            # Lost, this add waits for the parts before it that are not counted yet (``cas``).
            cas.ahead = sum(1 for held in slots[: where[fresh[0]]] if not held)
            if cas.ahead and level == 0 and self.on_race is not None:
                self.on_race()  # parts before ours are still counting: they end with us
            if node.get("by") is None and all(slots):
                node["by"] = fresh[-1]
            body = dump_node(node)
            if current is None:
                client.put(key, body, mode=PutMode.CREATE, content_type="application/json")
            else:
                client.put(key, body, mode=PutMode.update(current.etag), content_type="application/json")
        return self._steps(node.get("by"), batch, slots, fresh)

    @staticmethod
    def _yield_to_the_creator(cas: Attempt, key: str, where: dict[str, int], batch: list[Item]) -> None:
        """A first run that reads its leaf missing: the leaf's first part is most likely creating it
        now (a fleet takes parts in order), and our create would lose (a PUT and a GET for
        nothing). Raise ``Yielded``: wait in turn instead, a read and a write per part ahead."""
        if any(check for _m, _e, check in batch):
            return  # a redelivery, or a climb counted below already: it reads the root instead
        ahead = min(where.get(member, 0) for member, _e, _c in batch)
        if ahead:
            cas.ahead, cas.turn = ahead, 2.0
            raise Yielded(key)

    @staticmethod
    def _steps(by: str | None, batch: list[Item], slots: list[Any], fresh: Sequence[str] = ()) -> list[Done]:
        """The member that completed the node goes up (once per batch); the others wait."""
        out: list[Done] = []
        for member, _entry, _check in batch:
            if member == by:
                out.append(("up", slots, member not in fresh))
                by = None
            else:
                out.append(("wait", None, member not in fresh))
        return out
