"""The chord engine: Celery's chord interface, counted natively where the store allows.

``S3Backend`` hands it what Celery calls on the backend (``apply_chord``, ``set_chord_size``,
``on_chord_part_return``, ``incr``); the counting itself is in ``rootcounter`` (the chord's root
counter: exactly once, the lease, failures) and ``tree`` (the tree of small counters a large chord
counts in), the firing part's join, publish and clean-up in ``firing``. This module holds the
producer's one decision (native or chord_unlock, root or tree: ``rootcounter.MARK``) and each
part's count, with its small result carried along.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from celery import states
from celery.canvas import maybe_signature
from celery.exceptions import ChordError
from celery.result import ResultSet
from celery.utils.log import get_logger

from ..results.store import ResultStore
from ..s3.config import StoreId
from . import geometry as treegeometry
from . import memory as chordmemory
from . import rootcounter as chords
from . import tree as chordtree
from . import turns
from .counter import CasCounter
from .firing import ChordFiring

__all__ = ("ChordEngine",)

logger = get_logger(__name__)


class ChordEngine:
    """Native chords on one store for one Celery app (``chord_unlock`` where the store cannot count).

    ``celery``: the Celery backend served (its public API only: keys, codec, group save and restore,
    ``fallback_chord_unlock``); ``read_results``: the waiter's ``get_many``; ``remember_header``: where
    the producer leaves a header's ids for its caller's waits (the read-ahead's ``remember``);
    ``notify``: the waiter's ``notify_caller``, which wakes the producer of a chord whose body a part
    failed. ``cas_deadline``: how long a compare-and-swap may keep losing to other writers; ``lease``:
    how long the run of the part that completed the count owns the body's publishing (see
    ``rootcounter``); ``tree_from``: chords with at least this many parts (all plain tasks) count in
    a tree (``tree``).
    """

    def __init__(
        self,
        store: ResultStore,
        app: Any,
        *,
        celery: Any,
        read_results: Callable[..., Iterator[Any]],
        remember_header: Callable[[str, Sequence[str]], None],
        scope: StoreId,
        notify: Callable[[str, str, str | None, Any], None] | None = None,
        cas_deadline: float = 120.0,
        lease: float = 60.0,
        tree_from: int = 2,
    ) -> None:
        self.store = store
        self.settings = store.settings
        self.app = app
        self._celery = celery
        self._remember = remember_header
        self.tree_from = tree_from
        client, name = (lambda: store.client), str(scope)
        self.turns = turns.Turns()  # the last final write of each thread, and the parts' turns
        self.firing = ChordFiring(client, store.settings, app, celery=celery, read_results=read_results, notify=notify)
        self.counter = chords.ChordCounter(client, name, deadline_s=cas_deadline, lease_s=lease)
        self.tree = chordtree.TreeCounter(client, name, deadline_s=cas_deadline)
        self.tree.on_race = self.turns.contended  # the fleet's parts end together: take turns
        self._incr = CasCounter(client, name, deadline_s=cas_deadline)

    def set_cas_deadline(self, seconds: float) -> None:
        """How long each of the engine's compare-and-swaps may keep losing to other writers."""
        self.counter.deadline_s = self.tree.deadline_s = self._incr.deadline_s = seconds

    @property
    def native(self) -> bool:
        """True when chords count parts with compare-and-swap instead of chord_unlock."""
        return self.store.support.ok

    def _key(self, group_id: str) -> str:
        """The object key of a chord's counter (its root, in a tree)."""
        return self.store.key(self._celery.get_key_for_chord(group_id))

    def incr(self, key: bytes | str) -> int:
        """Add one to a counter object by compare-and-swap and return the new value.

        See ``counter``: the threads of a process commit together, and each increment gets
        its own value, so exactly one chord part sees the chord's size.
        """
        return self._incr.incr(self.store.key(key))

    # -- producer ------------------------------------------------------------------------------

    def tree_for(self, header_result_args: Any) -> treegeometry.Geometry | None:
        """A tree for a large header of plain tasks (numbered 0..n-1 by Celery), else None."""
        try:
            results = list(header_result_args[1])
        except Exception:  # noqa: BLE001 - an unusual header counts in the root
            return None
        if len(results) < max(2, self.tree_from) or any(isinstance(r, ResultSet) for r in results):
            return None
        return treegeometry.Geometry.fit(len(results))

    def _remember_header(self, header_result_args: Any) -> None:
        """The header's ids, so the caller's check of the body's parents reads them together."""
        try:
            ids = [r.id for r in header_result_args[1]]
        except Exception:  # noqa: BLE001 - an unusual header is read one result at a time
            return
        self._remember(str(header_result_args[0]), ids)

    def apply_chord(self, header_result_args: Any, body: Any, **kwargs: Any) -> Any:
        """Decide native counting or chord_unlock once, here, and send the decision with the chord.

        The decision goes into the body signature (``rootcounter.MARK``), which every header task
        receives as ``request.chord``, with the tree's geometry for a large chord. Native: save
        the group and create the counter before any part is published; the part that completes
        the count fires the body.
        """
        native = self.native
        group_id = header_result_args[0]
        self._remember_header(header_result_args)
        mark: dict[str, Any] = {"native": native, "gid": group_id}
        tree = self.tree_for(header_result_args) if native else None
        if tree is not None:
            mark["tree"] = tree.to_mark()
        body[chords.MARK] = mark
        chordmemory.remember_decision(group_id, native, body)
        celery = self._celery
        celery.ensure_chords_allowed()
        header_result = self.app.GroupResult(*header_result_args)
        if native:
            header_result.save(backend=celery)
            self.counter.create(self._key(group_id), tree=tree is not None)
        else:
            celery.fallback_chord_unlock(header_result, body, **kwargs)
        return None

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        """Record Celery's size of the chord (called before its last part is published).

        Celery counts a chain in the header as its last task, a nested chord as its body, a
        group as its tasks (``_chord._descend``); the size is what the Redis backend uses too.
        A tree chord's root counts the root's children instead, and its size must be the
        number of header tasks the producer numbered.

        The other parts are already published, and without a size the count can never
        complete: a failure here (a 403 on the counter, the store gone past the retries, the
        counter gone) fails the body with a ChordError naming the cause, then raises, so the
        last part is not published and the producer's ``apply_async`` fails loudly too.
        """
        decision = chordmemory.remember_decision(group_id)
        if decision is False:
            return  # this process applied it with chord_unlock
        key = self._key(group_id)
        body = chordmemory.take_body(group_id)
        tree = treegeometry.Geometry.from_mark(body.get(chords.MARK)) if isinstance(body, dict) else None
        size = int(chord_size)
        if tree is not None:
            if size != tree.n:
                reason = f"its size ({size}) is not its number of header tasks ({tree.n}): it cannot be counted"
                self._fail_unsized_chord(body, group_id, key, reason)
                raise ChordError(f"s3result: chord {group_id}: {reason}")
            size = len(tree.expected(tree.height, 0))
        try:
            recorded = self.counter.set_size(key, size)
        except Exception as exc:
            if body is not None:
                self._fail_unsized_chord(body, group_id, key, f"recording the chord's size failed: {exc!r}")
            raise
        if not recorded and decision:
            reason = "its counter disappeared before the chord's size was recorded (deleted by another process?)"
            if body is not None:
                self._fail_unsized_chord(body, group_id, key, reason)
            raise ChordError(f"s3result: chord {group_id}: {reason}")

    def _fail_unsized_chord(self, body: Any, group_id: str, key: str, reason: str) -> None:
        """The producer's side of ``_fail_chord``: mark the counter failed, store the error on the body.

        Each step is best effort (the store that refused the size may refuse these too): the
        error raised to the producer is the one that matters when nothing can be written.
        """
        message = f"s3result: chord {group_id} on {self.settings.redacted_url()}: {reason}"
        logger.error("%s", message)
        callback = maybe_signature(body, app=self.app)
        marked = self.counter.fail(key, message)
        if marked is not True and self._body_ended(callback):
            return  # a part reported this chord already
        try:
            self.firing.chord_error(callback, ChordError(message))
        except Exception as exc:  # noqa: BLE001 - the producer's own error is raised next
            logger.error("s3result: could not store the ChordError of chord %s on its body: %r", group_id, exc)
            return
        try:
            self.store.client.delete(key)  # a part that comes after finds no counter and does nothing
        except Exception:  # noqa: BLE001 - marked failed or not, the body holds the error
            logger.warning("s3result: could not delete the counter of failed chord %s", group_id)

    # -- parts ---------------------------------------------------------------------------------

    def on_chord_part_return(self, request: Any, state: str, result: Any, **kwargs: Any) -> Any:
        """Count this part (native chords only); the part that completes the count fires."""
        mark = chords.marking(getattr(request, "chord", None))
        if mark is not None:
            return self._chord_part_native(request, mark, state, result) if mark["native"] else None
        if not self.native:
            return None
        return self._chord_part_unmarked(request)

    def _chord_part_unmarked(self, request: Any) -> Any:
        """A chord from an older producer (no mark, no counter made up front): counted with ``incr``.

        Celery's own version reads and decodes the whole group in every part to learn the chord's
        size: one more GET per part and O(parts) decoding each, O(parts^2) per chord. The size
        never changes, so each process learns it once per chord (``_chord_size``); a part that
        does not complete the count is then one CAS, and the part whose count is the size fires
        (every header result read: this counter carries none).
        """
        group_id = getattr(request, "group", None)
        if not group_id:
            return None
        size = self._chord_size(request, group_id)
        if isinstance(size, str):  # the group cannot be restored: Celery's errors, on the body
            callback = maybe_signature(request.chord, app=self.app)
            logger.error("Chord %r raised: %s", group_id, size)
            return self.firing.chord_error(callback, ChordError(size), request)
        count = self.incr(self._celery.get_key_for_chord(group_id))
        if count > size:
            logger.warning("Chord counter incremented too many times for %r", group_id)
        if count != size:
            return None
        return self.firing.fire(request, group_id, self._key(group_id), carried=False)

    def _carried(self, state: str, result: Any) -> str | None:
        """The part's encoded result when it can travel with its count (small JSON text), else None."""
        if state != states.SUCCESS:
            return None
        try:
            encoded = self._celery.encode(self._celery.prepare_value(result))
        except Exception:  # noqa: BLE001 - then the join reads the stored result
            return None
        if not isinstance(encoded, str) or len(encoded) > treegeometry.VALUE_MAX:
            return None
        return encoded

    def _chord_part_native(self, request: Any, mark: dict[str, Any], state: str = "", result: Any = None) -> Any:
        """Count this part in the chord's counter; fire the body iff this part completed it."""
        group_id = getattr(request, "group", None)
        if not group_id:
            return None
        key = self._key(group_id)
        try:
            support = self.store.support
        except Exception as exc:  # noqa: BLE001 - a failed probe fails the chord, loudly
            return self._fail_chord(request, group_id, key, f"the conditional-write probe failed: {exc!r}")
        if not support.ok:
            return self._fail_chord(
                request,
                group_id,
                key,
                f"the producer chose native chords but this worker cannot count natively "
                f"({support.reason}); give producer and workers the same conditional_writes setting",
            )
        index = getattr(request, "group_index", None)
        # The member counted in the root (the last node's name, in a tree), for ``recover``.
        member = [f"{request.id}:{index}"]
        value = self._carried(state, result)
        written: chords.CounterState | None = None  # the counter's state this part's count left
        try:
            tree = treegeometry.Geometry.from_mark(mark)
            if tree is None:
                precreated = mark.get("gid") == group_id
                outcome, written = self.counter.count_and_state(key, member[0], precreated=precreated, value=value)
            else:
                outcome, written = self._count_in_tree(key, tree, request.id, index, value, member)
        except Exception as exc:  # noqa: BLE001 - any failure to count fails the chord, loudly
            if self.counter.recover(key, member[0]):  # our write completed the set after all
                return self.firing.fire(request, group_id, key)
            return self._fail_chord(request, group_id, key, f"counting part {request.id} failed: {exc!r}", member[0])
        if outcome != "fire":
            return None
        return self.firing.fire(request, group_id, key, written)

    def _count_in_tree(
        self, key: str, tree: treegeometry.Geometry, task_id: str, index: Any, value: str | None, member: list[str]
    ) -> chords.Counted:
        """Climb from this part's leaf while our add completes each node; count at the root last,
        with the node's slots in a small chord (``Geometry.root_value``: the join reads no node).
        ``member[0]`` is set to the node counted in the root before that count (for ``recover``).
        """
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < tree.n:
            raise treegeometry.PartClash(f"its group_index {index!r} is not one of the chord's 0..{tree.n - 1}")
        level, node = 0, tree.leaf_of(index)
        name = str(index)
        entry: Any = treegeometry.fingerprint(task_id) + (value or "")
        again = False
        first = self.turns.stored_first(task_id)
        while level < tree.height:
            step, slots, again = self.tree.add_and_read(key, tree, level, node, name, entry, again, first)
            if step == "wait":
                return "wait", None
            if step != "up":
                return ("late" if step == "late" else "failed"), None
            # A node up to CARRY_LEVEL carries its children's slots: the join reads fewer objects.
            name, entry = str(node), (slots if level + 1 <= treegeometry.CARRY_LEVEL else 1)
            level, node = level + 1, tree.parent(node)
        member[0] = name
        order, value = tree.expected(tree.height, 0), tree.root_value(entry)
        return self.counter.count_and_state(key, name, precreated=True, value=value, order=order)

    def before_final_write(self, request: Any) -> None:
        """A small chord's part waits its turn before its result's PUT (``turns``)."""
        self.turns.before_store(request, self.app)

    def note_final_write(self, task_id: str, stored: bool, took: float) -> None:
        """The backend stored a final state for ``task_id`` in ``took`` seconds (``stored``: this
        write put it there, a run before did not): that part's count then needs no proof that its
        chord is still on, and the time sets the next turns (``turns``)."""
        self.turns.note_write(task_id, stored, took)

    def _fail_chord(self, request: Any, group_id: str, key: str, reason: str, member: str | None = None) -> Any:
        """End the chord with a ChordError on its body, unless it already completed.

        ``member``: what this part counted in the root. If the chord completed, it may be this part's
        own write that completed it (it landed, then the store stopped answering for longer than
        ``recover`` waited): then this part owns the body, as ``recover`` would have found later.
        """
        message = f"s3result: chord {group_id} on {self.settings.redacted_url()}: {reason}"
        logger.error("%s", message)
        marked = self.counter.fail(key, message)
        if marked is False:
            if member is not None and self.counter.recover(key, member):
                return self.firing.fire(request, group_id, key)
            return None  # the chord already ended: completed, or failed and reported once
        callback = maybe_signature(request.chord, app=self.app)
        if marked is None and self._body_ended(callback):
            return None  # unmarkable counter (a 403): another part reported it already
        try:
            return self.firing.chord_error(callback, ChordError(message), request)
        finally:
            self._clean_up_failed(request, group_id, key)

    def _clean_up_failed(self, request: Any, group_id: str, key: str) -> None:
        """Delete what a failed chord leaves: its counter first (parts that come later then stop),
        its tree's nodes and its saved group; log what could not be deleted.

        A part still running when its chord failed may create its leaf again afterwards (a first run
        creates a missing leaf without reading the counter): the prefix's lifecycle rule expires it.
        """
        keys = [key]
        try:
            tree = treegeometry.Geometry.from_mark(chords.marking(getattr(request, "chord", None)))
        except treegeometry.PartClash:
            tree = None
        if tree is not None:
            keys += [treegeometry.node_key(key, lv, n) for lv, ns in enumerate(tree.levels[:-1]) for n in ns]
        keys.append(self.store.key(self._celery.get_key_for_group(group_id)))
        failed = self.firing.delete_each(keys)
        if failed:
            logger.warning(
                "s3result: failed chord %s: could not delete %d of its %d objects (%s%s); the lifecycle rule on "
                "the prefix expires them",
                group_id,
                len(failed),
                len(keys),
                ", ".join(failed[:3]),
                ", ..." if len(failed) > 3 else "",
            )

    def _body_ended(self, callback: Any) -> bool:
        """Whether the chord body already holds a final state (read once; False when unknown)."""
        try:
            return self.store.meta(callback.id)["status"] in states.READY_STATES
        except Exception:  # noqa: BLE001 - unknown: report (loud beats silent)
            return False

    def _chord_size(self, request: Any, group_id: str) -> int | str:
        """The chord's size as Celery reckons it, or why its group cannot tell (Celery's words)."""
        chord = getattr(request, "chord", None)
        size = chord.get("chord_size") if isinstance(chord, dict) else None
        if isinstance(size, int):
            return size
        size = chordmemory.known_size(group_id)
        if size is None:
            try:
                group = self._celery.restore_group(group_id)
            except Exception as exc:  # noqa: BLE001 - reported on the body
                return f"Cannot restore group: {exc!r}"
            if group is None:
                return f"GroupResult {group_id} no longer exists"
            size = len(group)
            chordmemory.remember_size(group_id, size)
        return size
