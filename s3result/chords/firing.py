"""The chord's firing part: join the header, publish the body, clean up (``ChordFiring``).

The join reads what the counter carries: each part's small encoded result travels with its
count (in the root for a small chord, in its leaf for a large one, see ``tree``), so
the firing part reads the counter (or the leaves) instead of every result; only a part whose
result is too big, not JSON text, or not a success is read on its own. The whole join is
bounded by ``result_chord_join_timeout``: waiting for results that are not in the counter
stops there, and the body fails with a ChordError that says so (the counter's own reads may
end one request's time later). Celery's ``join_native`` calls ``get()`` without a timeout on
a nested group, which can block a pool process for good; this join never does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from celery import states
from celery.canvas import group, maybe_signature
from celery.exceptions import ChordError
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import ResultSet
from celery.utils.log import get_logger

from ..results.settings import Settings
from ..s3.client import S3Client
from . import geometry as treegeometry
from . import state as chords

__all__ = ("ChordFiring",)

logger = get_logger(__name__)

_MISSING = object()


def _failed_ids(callback: Any) -> list[str]:
    """The ids ``chord_error_from_stack`` may store the failure at: the body's own id and, for a
    group body, each member's (recent Celery fails each of them, where the producer waits; older
    versions the group's id alone). A wake-up for an id not stored costs the waiter one read."""
    ids = [str(callback.id)] if getattr(callback, "id", None) else []
    if isinstance(callback, group):
        try:
            results = callback.freeze().results  # the ids Celery froze it with moments ago
        except Exception:  # noqa: BLE001 - a wake-up is a courtesy: the caller's polls find the failure
            return ids
        ids += [str(result.id) for result in results if getattr(result, "id", None)]
    return ids


class ChordFiring:
    """Join, publish and clean up a native chord.

    ``client``: the process's client for the store; ``celery``: the Celery backend served (its public API only: ``restore_group``, ``decode``,
    ``chord_error_from_stack``); ``read_results``: the waiter's ``get_many``, which reads the results
    the counter does not carry; ``notify``: the waiter's ``notify_caller`` (see ``chord_error``).
    """

    def __init__(
        self,
        client: Callable[[], S3Client],
        settings: Settings,
        app: Any,
        *,
        celery: Any,
        read_results: Callable[..., Iterator[Any]],
        notify: Callable[[str, str, str | None, Any], None] | None = None,
    ) -> None:
        self._client = client
        self.settings = settings
        self.app = app
        self._celery = celery
        self.read_results = read_results
        self._notify = notify

    @property
    def client(self) -> S3Client:
        """This process's client for the store (``clients``)."""
        return self._client()

    def chord_error(self, callback: Any, error: ChordError, request: Any = None) -> Any:
        """Celery's ``chord_error_from_stack``, which needs the error on the stack (its traceback).

        It stores the body's failure without a request, so nothing would wake the process waiting
        for the body: with the part's ``request``, its sender (the chord's producer) is notified
        as for any stored result, instead of finding the failure at its next poll.
        """
        try:
            raise error
        except ChordError:
            stored = self._celery.chord_error_from_stack(callback, error)
        if request is not None and self._notify is not None:
            for body_id in _failed_ids(callback):
                self._notify(body_id, states.FAILURE, None, request)
        return stored

    # -- the firing part -----------------------------------------------------------------------

    def fire(
        self,
        request: Any,
        group_id: str,
        key: str,
        counted: chords.CounterState | None = None,
        *,
        carried: bool = True,
    ) -> Any:
        """Join the header, publish the body, then delete the counter and the saved group.

        ``counted``: the root counter's complete state as this part's count left it (a small
        chord's): the join takes the values it carries from there instead of reading it again.
        ``carried`` False: the counter carries no values (an older producer's chord, counted by
        ``incr``), so every header result is read.
        """
        callback = maybe_signature(request.chord, app=self.app)
        timeout = self.app.conf.result_chord_join_timeout
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        try:
            tree = treegeometry.Geometry.from_mark(chords.marking(request.chord))
        except treegeometry.PartClash as exc:
            return self.chord_error(callback, ChordError(str(exc)), request)
        nodes = (
            []
            if tree is None
            else [treegeometry.node_key(key, lv, n) for lv, ns in enumerate(tree.levels[:-1]) for n in ns]
        )
        pool, leaf_reads = self._read_leaves(key, tree, deadline, counted)
        deps = None
        try:
            try:
                deps = self._celery.restore_group(group_id)
            except Exception as exc:  # noqa: BLE001 - reported on the body
                return self.chord_error(callback, ChordError(f"Cannot restore group: {exc!r}"), request)
            if deps is None:
                return self.chord_error(callback, ChordError(f"GroupResult {group_id} no longer exists"), request)
            try:
                values = self.join_header(
                    deps,
                    timeout,
                    key=key if carried else None,
                    tree=tree,
                    deadline=deadline,
                    leaf_reads=leaf_reads,
                    counted=counted,
                )
            except ChordError as exc:
                return self.chord_error(callback, exc, request)
            except Exception as exc:  # noqa: BLE001 - reported on the body
                return self.chord_error(callback, ChordError(f"Join error: {exc!r}"), request)
            return self._publish(callback, group_id, values, request)
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            self.clean_up(group_id, key, deps, nodes)

    def _read_leaves(
        self,
        key: str,
        tree: treegeometry.Geometry | None,
        deadline: float | None,
        counted: chords.CounterState | None,
    ) -> tuple[Any, list[Any] | None]:
        """A tree's carrying nodes, read while the group is restored, 32 at a time: (pool, futures).

        None when there is no tree, or when the root state this part wrote carries every slot
        (a small chord's): the join then reads no node.
        """
        if tree is None or (counted is not None and tree.root_slots(counted.values) is not None):
            return None, None
        from concurrent.futures import ThreadPoolExecutor  # only large chords need it

        pool = ThreadPoolExecutor(max_workers=min(32, self.settings.max_connections))
        reads = self._reads_deadline(deadline)
        client = self.client
        leaf_reads = [
            pool.submit(client.get_or_none, treegeometry.node_key(key, tree.join_level, n), deadline=reads)
            for n in tree.levels[tree.join_level]
        ]
        return pool, leaf_reads

    def _publish(self, callback: Any, group_id: str, values: list[Any], request: Any = None) -> Any:
        """Send the body with the header's values; a failure is the body's ChordError."""
        try:
            # Celery's private name, used as its own chord backends do (base.py, redis.py, gcs.py):
            # there is no public call that publishes under broker_connection_retry's policy and keeps
            # a callback's publish from being retried twice. tests/test_layering.py fails if it goes.
            self.app.amqp._retry_publish(callback.delay, values)
        except Exception as exc:  # noqa: BLE001 - reported on the body
            logger.exception("Chord %r raised: %r", group_id, exc)
            return self.chord_error(callback, ChordError(f"Callback error: {exc!r}"), request)
        return None

    def _reads_deadline(self, deadline: float | None) -> float | None:
        """The counter's reads may end one request's time past the join's deadline: they are
        what lets the join wait for nothing (a timeout shorter than a read still joins)."""
        if deadline is None:
            return None
        return max(deadline, time.monotonic() + self.settings.connect_timeout + self.settings.read_timeout)

    def clean_up(self, group_id: str, key: str, deps: Any, nodes: list[str] | None = None) -> None:
        """Delete the counter (root first: late parts then stop), its tree and the saved group.

        A failure is logged, never raised: raised, it would make Celery's trace fail the
        completing part (whose body is already published) and count it again through
        ``mark_as_failure``, which finds the counter still there and, after the lease, takes
        the completion over: the body twice. What is left behind expires by the lifecycle rule.
        """
        try:
            self.client.delete(key)
            if nodes:
                self._delete_all(nodes)
            if deps is not None:
                deps.delete()
        except Exception as exc:  # noqa: BLE001 - the body is published; what is left is logged
            logger.warning("s3result: could not clean up chord %s after publishing its body: %r", group_id, exc)

    def delete_each(self, keys: list[str]) -> list[str]:
        """DELETE every key (the first alone, then the others concurrently); the keys that failed."""
        failed: list[str] = []

        def delete(key: str) -> None:
            try:
                self.client.delete(key)
            except Exception:  # noqa: BLE001 - reported by the caller
                failed.append(key)

        delete(keys[0])
        if len(keys) > 2:
            from concurrent.futures import ThreadPoolExecutor  # only large chords need it

            with ThreadPoolExecutor(max_workers=min(16, self.settings.max_connections)) as pool:
                list(pool.map(delete, keys[1:]))
        else:
            for key in keys[1:]:
                delete(key)
        return failed

    def _delete_all(self, keys: list[str]) -> None:
        """DELETE every key, concurrently over the pool (a large chord's tree: hundreds of nodes)."""
        from concurrent.futures import ThreadPoolExecutor  # only large chords need it

        with ThreadPoolExecutor(max_workers=min(16, self.settings.max_connections)) as pool:
            for _ in pool.map(self.client.delete, keys):
                pass

    def join_header(
        self,
        deps: Any,
        timeout: float | None,
        *,
        key: str | None = None,
        tree: treegeometry.Geometry | None = None,
        deadline: float | None = None,
        leaf_reads: list[Any] | None = None,
        counted: chords.CounterState | None = None,
    ) -> list[Any]:
        """The header's values, nested as Celery's join gives them, within the join timeout.

        Values come from the counter where they travelled with the counts (the root's, or a
        tree's leaves); the others are read with ``get_many``, once each, under what is left
        of ``result_chord_join_timeout`` (Celery's ``join_native`` calls ``get()`` without a
        timeout on a nested group, which can block a pool process for good).
        """
        if deadline is None and timeout is not None:
            deadline = time.monotonic() + float(timeout)
        ids: list[str] = []

        def walk(res: Any) -> None:
            if isinstance(res, ResultSet):
                for child in res.results:
                    walk(child)
            else:
                ids.append(res.id)

        walk(deps)
        carried = self._carried_values(deps, ids, key, tree, deadline, timeout, leaf_reads, counted)
        missing = [i for i in dict.fromkeys(ids) if i not in carried]
        metas: dict[str, Any] = {}
        if missing:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                metas = dict(self.read_results(missing, timeout=left, interval=0.1))
            except CeleryTimeout as exc:
                raise ChordError(
                    f"the chord's join did not finish within result_chord_join_timeout={timeout}s: "
                    f"{len(missing) - len(metas)} of {len(ids)} header results not read ({exc})"
                ) from exc

        def build(res: Any) -> Any:
            if isinstance(res, ResultSet):
                return [build(child) for child in res.results]
            value = carried.get(res.id, _MISSING)
            if value is not _MISSING:
                return value
            meta = metas[res.id]
            value = meta["result"]
            if meta["status"] in states.PROPAGATE_STATES:
                error = ChordError(f"Dependency {res.id} raised {value!r}")
                error.__cause__ = value if isinstance(value, BaseException) else None
                raise error
            return value

        return [build(child) for child in deps.results]

    def _decoded(self, state: chords.CounterState, ids: list[str]) -> dict[str, Any]:
        """The values a root counter carries, by task id."""
        encoded = {m.rpartition(":")[0]: v for m, v in state.values.items()}
        return {i: self._celery.decode(encoded[i]) for i in ids if i in encoded}

    def _carried_values(
        self,
        deps: Any,
        ids: list[str],
        key: str | None,
        tree: treegeometry.Geometry | None,
        deadline: float | None,
        timeout: float | None,
        leaf_reads: list[Any] | None = None,
        counted: chords.CounterState | None = None,
    ) -> dict[str, Any]:
        """The values that travelled with the counts, by task id (read from the root or the leaves,
        or taken from ``counted``: the root's state as the firing part wrote it)."""
        if counted is not None and tree is None:
            return self._decoded(counted, ids)
        top = None if counted is None or tree is None else tree.root_slots(counted.values)
        if top is not None and tree is not None:
            if len(ids) != tree.n:
                raise ChordError(f"the saved group holds {len(ids)} results, the chord was counted for {tree.n}")
            return self._slot_values(tree.part_slots(tree.height, 0, top), ids)
        if key is None:
            return {}
        client = self.client
        reads = self._reads_deadline(deadline)
        try:
            if tree is None:
                found = client.get_or_none(key, deadline=reads)
                return {} if found is None else self._decoded(chords.CounterState.load(found.body), ids)
            if len(ids) != tree.n:
                raise ChordError(f"the saved group holds {len(ids)} results, the chord was counted for {tree.n}")
            level = tree.join_level
            leaves = [treegeometry.node_key(key, level, node) for node in tree.levels[level]]
            if leaf_reads is None:
                bodies = client.get_many(leaves, deadline=reads)
            else:
                bodies = [f.result() for f in leaf_reads]
        except ChordError:
            raise
        except Exception as exc:
            if reads is not None and time.monotonic() >= reads:
                raise ChordError(
                    f"the chord's join did not finish within result_chord_join_timeout={timeout}s: "
                    f"reading its counter failed: {exc!r}"
                ) from exc
            raise
        values: dict[str, Any] = {}
        for node, leaf_key, leaf in zip(tree.levels[level], leaves, bodies, strict=True):
            if leaf is None:
                raise ChordError(f"the chord's counter node {leaf_key!r} is missing")
            values.update(self._slot_values(tree.part_slots(level, node, treegeometry.load_node(leaf.body)["m"]), ids))
        return values

    def _slot_values(self, slots: Any, ids: list[str]) -> dict[str, Any]:
        """The values carried in part slots ``(index, slot)``, by task id; each slot's fingerprint
        must be its task's."""
        values: dict[str, Any] = {}
        fp_len = treegeometry.FP_LEN
        for index, slot in slots:
            task_id = ids[index]
            if not isinstance(slot, str) or slot[:fp_len] != treegeometry.fingerprint(task_id):
                raise ChordError(f"part index {index} was counted for another task than {task_id}")
            if len(slot) > fp_len:
                values[task_id] = self._celery.decode(slot[fp_len:])
        return values
