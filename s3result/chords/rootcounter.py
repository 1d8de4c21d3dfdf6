"""Native chords: one decision per chord, and a counter that counts each part once.

The producer decides once, in ``apply_chord``, whether a chord counts natively or uses
``chord_unlock``, and writes the decision into the body signature under ``MARK``. Header
tasks carry the body as ``request.chord``, so every part (and every redelivery of it) sees
the producer's decision instead of making its own: a worker never counts an unlock chord,
and a worker that cannot count a native one fails it loudly.

For a native chord the producer creates the counter object before any part is published,
and records the chord's size in it (``set_chord_size``, which Celery calls before
publishing the last part). The counter holds the SET of parts counted, each named as the
Redis backend names them (``<task id>:<group index>``), the write that completed the set
(``done``: the part, a token unique to that write, and when), and ``failed`` once the chord
was failed. Because it is a set and not a number:

- a part whose PUT landed but whose reply was lost re-reads, finds itself counted, and
  knows from the token whether its own write completed the set (exactly one write does);
- a part run twice (broker redelivery, Celery's trace calling ``on_chord_part_return``
  again through ``mark_as_failure``) is counted once;
- the counter is deleted after the body is published, so a part that finds no counter
  arrives after the chord finished and does nothing (and leaves nothing behind).

A run of the completing part that did not make the completing write itself (a redelivery)
fires only when the completing run cannot be live any more: after ``lease_s`` it takes the
completion over by compare-and-swap. So the body is published once, unless a completing
run is still busy publishing after the lease (then twice), or every run of the completing
part dies between the completing write and the publish (then the redelivery fires it).

Threads of one process that count on the same counter commit together, as ``counter`` does.

Each part's small encoded result travels with its count (``values``), so the firing part's
join reads the counter instead of every result. A large chord counts its parts in a tree of
small objects (``tree``) whose root is this counter, holding the tree's top nodes as its
members; such a root is written as version 3, which workers that know no trees refuse.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..errors import S3Error, TransportError
from ..results.cas import MAX_AHEAD, Attempt, compare_and_swap, may_retry
from ..s3.client import S3Client
from ..s3.request import PutMode
from ..s3.retry import Backoff, RetryConfig, sleep
from .commit import group_commit
from .state import MARK, Counted, CounterState, Outcome, marking

__all__ = ("MARK", "ChordCounter", "Counted", "CounterState", "Outcome", "marking")

T = TypeVar("T")

#: The most top nodes ahead a root's loser waits for (``cas``; a leaf's part waits for 3).
ROOT_TURNS = 8


class ChordCounter:
    """Counter objects of native chords on one store and bucket (``scope``)."""

    def __init__(
        self,
        client: Callable[[], S3Client],
        scope: str,
        *,
        deadline_s: float = 120.0,
        lease_s: float = 60.0,
        sleep: Callable[[float], None] = sleep,
    ) -> None:
        self._client = client
        self._scope = scope
        self.deadline_s = deadline_s
        self.lease_s = lease_s
        self._sleep = sleep
        self._lease_wait = Backoff(RetryConfig(base_delay=0.1, max_delay=0.1), sleep=sleep)

    # -- producer ---------------------------------------------------------------------------

    def create(self, key: str, *, tree: bool = False) -> None:
        """A fresh counter (an unconditional PUT: applying a frozen chord again starts over)."""
        self._client().put(key, CounterState(tree=tree).dump(), content_type="application/json")

    def set_size(self, key: str, size: int) -> bool:
        """Record the chord's size; False when there is no counter (not a native chord's group)."""
        client = self._client()

        def attempt(cas: Attempt) -> bool:
            current = client.get_or_none(key)
            if current is None:
                return False
            cas.read(current.etag)
            state = CounterState.load(current.body)
            if state.size == size:
                return True
            state.size = size
            client.put(key, state.dump(), mode=PutMode.update(current.etag), content_type="application/json")
            return True

        return self._cas(key, attempt)

    def _cas(self, key: str, attempt: Callable[[Attempt], T], deadline_s: float | None = None, turns: int = 0) -> T:
        return compare_and_swap(
            key,
            attempt,
            deadline_s=self.deadline_s if deadline_s is None else deadline_s,
            sleep=self._sleep,
            turns=turns or MAX_AHEAD,
        )

    # -- parts -----------------------------------------------------------------------------

    def count(self, key: str, member: str, *, precreated: bool, value: str | None = None) -> Outcome:
        """Count ``member`` once; "fire" for exactly one part of the chord.

        ``precreated``: the producer created the counter, so a missing one means the chord
        finished ("late"). ``value``: the part's encoded result, kept for the join. Raises
        when counting failed (the caller fails the chord).
        """
        return self.count_and_state(key, member, precreated=precreated, value=value)[0]

    def count_and_state(
        self, key: str, member: str, *, precreated: bool, value: str | None = None, order: Sequence[str] = ()
    ) -> Counted:
        """``count``, with the complete counter state when this part fires (the state its write
        left, or the one it read finding that write landed): the join reads no counter then.

        ``order``: every member the counter will hold, in the order they are expected to come
        (a tree's top nodes): a write that loses a race waits for those before it (``cas``).
        """
        return group_commit(
            ("chord", self._scope, key), (member, value), lambda batch: self._swap(key, batch, precreated, order)
        )

    def _swap(
        self, key: str, items: list[tuple[str, str | None]], precreated: bool, order: Sequence[str] = ()
    ) -> list[Counted]:
        """Add the members of ``items`` in one compare-and-swap; one outcome per member."""
        members = [m for m, _ in items]
        client = self._client()
        tokens: set[str] = set()

        def attempt(cas: Attempt) -> list[Counted]:
            current = client.get_or_none(key)
            if current is None and precreated:
                return [("late", None)] * len(members)
            cas.read(None if current is None else current.etag)
            state = CounterState() if current is None else CounterState.load(current.body)
            if state.failed is not None:
                return [("failed", None)] * len(members)
            counted = set(state.parts)
            if all(m in counted for m in members):
                # Counted already: by one of our earlier writes (its reply lost) or before.
                return self._resolve(key, state, members, tokens)
            token = uuid.uuid4().hex
            tokens.add(token)
            fresh = [m for m in dict.fromkeys(members) if m not in counted]
            if fresh[0] in order:
                cas.ahead = sum(1 for m in order[: list(order).index(fresh[0])] if m not in counted)
            state.parts.extend(fresh)
            state.values.update((m, v) for m, v in items if v is not None and m in fresh)
            if state.complete and state.done is None:
                state.done = {"by": fresh[-1], "token": token, "at": time.time()}
            body = state.dump()
            if current is None:
                client.put(key, body, mode=PutMode.CREATE, content_type="application/json")
            else:
                client.put(key, body, mode=PutMode.update(current.etag), content_type="application/json")
            return self._outcomes(state, members, tokens)

        # A tree's top nodes complete in the order of their numbers, the last row of leaves all
        # at the end of the chord: their writers wait for more turns than a leaf's.
        return self._cas(key, attempt, turns=ROOT_TURNS)

    @staticmethod
    def _outcomes(state: CounterState, members: list[str], tokens: set[str]) -> list[Counted]:
        """After our write landed: the member that completed the set fires, once, with the state
        it wrote (the join needs no read of it)."""
        done = state.done
        firing = done["by"] if done is not None and done.get("token") in tokens else None
        out: list[Counted] = []
        for m in members:
            if m == firing:
                out.append(("fire", state))
                firing = None  # a duplicate in the same batch does not fire again
            else:
                out.append(("wait", None))
        return out

    def _resolve(self, key: str, state: CounterState, members: list[str], tokens: set[str]) -> list[Counted]:
        """Every member is already counted: by our own write whose reply was lost, or earlier."""
        done = state.done
        if done is None:
            return [("wait", None)] * len(members)
        if done.get("token") in tokens:
            return self._outcomes(state, members, tokens)
        if done.get("by") not in members:
            return [("wait", None)] * len(members)
        # Another run of this same part completed the set (we are a redelivery). It may be
        # publishing the body right now, or it may have died before publishing: wait out its
        # lease, then take the completion over if the counter is still there.
        out: list[Counted] = [("wait", None)] * len(members)
        out[members.index(done["by"])] = ("fire", None) if self._take_over(key, done["by"]) else ("late", None)
        return out

    def _take_over(self, key: str, member: str) -> bool:
        client = self._client()
        deadline = time.monotonic() + self.lease_s + self.deadline_s
        tokens: set[str] = set()  # our take-over writes whose outcome we did not see
        replacing: str | None = None  # the completion token our unseen write tried to replace
        while True:
            current = client.get_or_none(key)
            if current is None:
                return False  # the completing run published the body and deleted the counter
            state = CounterState.load(current.body)
            done = state.done
            if done is not None and done.get("token") in tokens:
                return True  # our take-over landed, only its reply was lost
            if replacing is not None and done is not None and done.get("token") != replacing:
                return False  # another run took the completion over meanwhile: it publishes
            if state.failed is not None or done is None or done.get("by") != member:
                return False
            age = time.time() - float(done.get("at", 0))
            if age < self.lease_s:
                if time.monotonic() > deadline:
                    return False
                # Up to a second at a time, plus the retry policy's jitter (runs waiting on one lease part).
                self._lease_wait.sleep(min(self.lease_s - age, 1.0) + self._lease_wait.delay(1))
                continue
            token = uuid.uuid4().hex
            replacing = done.get("token")
            state.done = {"by": member, "token": token, "at": time.time()}
            try:
                client.put(key, state.dump(), mode=PutMode.update(current.etag), content_type="application/json")
            except Exception as exc:  # noqa: BLE001 - only transient ones are retried
                if not may_retry(exc) or time.monotonic() > deadline:
                    raise
                tokens.add(token)  # its reply may be lost: the next read tells whether it landed
                continue
            return True

    def recover(self, key: str, member: str) -> bool:
        """After counting ``member`` failed: True when its write completed the set after all
        (it landed, then the store stopped answering) and this run now owns the completion,
        taken over after the lease like a redelivery's; the caller then fires instead of failing.
        """
        client = self._client()

        def attempt(_cas: Attempt) -> bool:
            current = client.get_or_none(key)
            if current is None:
                return False
            done = CounterState.load(current.body).done
            if done is None or done.get("by") != member:
                return False
            return self._take_over(key, member)

        try:
            return self._cas(key, attempt, min(self.deadline_s, 10.0))
        except Exception:  # noqa: BLE001 - still unknown: the caller fails the chord
            return False

    def fail(self, key: str, reason: str) -> bool | None:
        """Mark the chord failed, so no part fires it any more.

        False when the chord already ended (completed, or failed by another part, or its
        counter is gone): then the caller must not report it again. None when the store
        would not tell (the counter cannot be read or written): the caller reports it unless
        the body already holds a result.
        """
        client = self._client()
        tokens: set[str] = set()

        def attempt(cas: Attempt) -> bool:
            current = client.get_or_none(key)
            if current is None:
                return False
            cas.read(current.etag)
            state = CounterState.load(current.body)
            if state.failed is not None:
                return state.failed_token in tokens  # ours, its reply lost: report it
            if state.done is not None:
                return False
            token = uuid.uuid4().hex
            tokens.add(token)
            state.failed, state.failed_token = reason, token
            client.put(key, state.dump(), mode=PutMode.update(current.etag), content_type="application/json")
            return True

        try:
            return self._cas(key, attempt, min(self.deadline_s, 10.0))
        except (S3Error, TransportError, ValueError):
            return None  # cannot tell: fail the chord anyway (loud beats silent)
