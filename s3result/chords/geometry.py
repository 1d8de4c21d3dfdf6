"""Where each part of a large native chord is counted: the tree's shape (pure arithmetic, no I/O).

The counting itself, and the design notes behind this shape (budget, contention, which
parts, late parts), are in ``tree``. Here: the constants, a slot's fingerprint, the
node keys, ``Geometry`` (stripes, fill, stagger, fan-in) and a node's wire format, which
stays byte-identical across versions (a rolling upgrade counts with old and new workers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

__all__ = (
    "CARRY_LEVEL",
    "FP_LEN",
    "ROOT_CARRY_BUDGET",
    "STAGGER_FROM",
    "VALUE_MAX",
    "Geometry",
    "PartClash",
    "dump_node",
    "fingerprint",
    "load_node",
    "node_key",
)

#: Encoded results up to this size travel in the leaf; bigger ones are read at join time.
VALUE_MAX = 48
#: Inner nodes up to this level carry their children's slots (a copy of each completed child):
#: the join reads the nodes of this level, 1 per 512 parts, instead of every leaf, 1 per 32.
CARRY_LEVEL = 2
#: A leaf slot starts with this many hex digits of its task id's hash (see ``fingerprint``).
FP_LEN = 6

#: The staggered geometry's stripes, fill and fan-in (``Geometry``'s defaults).
STRIPES, FILL, FAN_IN = 32, 32, 4
#: Chords of this many parts or more stagger their leaves (a leaf completes every ``FILL`` parts).
STAGGER_FROM = STRIPES * FILL
#: Parts per leaf aimed at below ``STAGGER_FROM`` (while the columns are fewer than ``STRIPES``).
SMALL_LEAF = 4
#: Chords of up to this many parts store their results in turn (``turns``).
TURNS_MAX = 64
#: A node completing into the root carries its slots there too (the root's ``values``, by node)
#: while its slots times the root's other members take at most this many bytes: the part that
#: completes the root then joins from the state it wrote, with no read of a node. Each count
#: rewrites the root whole: carried, k members of s bytes cost about k * k * s bytes in reads and
#: writes, against k reads of s bytes plus a request's ~1 KB of headers each.
ROOT_CARRY_BUDGET = 1024
#: Up to this many leaves, the root counts the leaves itself; more go through inner nodes of
#: ``INNER_FAN_IN`` (a small chord's leaves all complete near its end: few levels, short queues).
#: Each inner node up to ``CARRY_LEVEL`` carries its children's slots, rewritten whole at each
#: add: about ``INNER_FAN_IN`` slots read and written per part (with 48-byte results, 4: ~220
#: bytes per part, 8: ~450), so up to 15 stripes the fan-in is 4 (one inner level: 3 or 4 nodes
#: under the root); from 16, 8 (4 would leave an inner node of level 2 with a single child).
FLAT_MAX, INNER_FAN_IN, WIDE_FAN_IN = 8, 4, 8


class PartClash(ValueError):
    """A part that the tree cannot count (its index missing, out of range or held by another task)."""


def fingerprint(task_id: str) -> str:
    """``FP_LEN`` hex digits of the task id's hash: tells a redelivery from another task at one index."""
    return hashlib.blake2b(task_id.encode("utf-8", "surrogatepass"), digest_size=FP_LEN // 2).hexdigest()


def node_key(root_key: str, level: int, node: int) -> str:
    """The key of a tree node: beside the chord's counter, under the same prefix and lifecycle rule."""
    return f"{root_key}.{level}.{node}"


@dataclass(frozen=True)
class Geometry:
    """Where each part of a chord of ``n`` parts is counted (pure arithmetic, no I/O)."""

    n: int
    stripes: int = STRIPES
    fill: int = FILL
    fan_in: int = FAN_IN
    _children: dict[tuple[int, int], list[str]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_mark(cls, mark: Any) -> Geometry | None:
        """The geometry the producer sent in its mark, or None (a chord counted in its root)."""
        tree = mark.get("tree") if isinstance(mark, dict) else None
        if not isinstance(tree, dict):
            return None
        values: list[int] = []
        for name in ("n", "s", "f", "k"):
            value = tree.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PartClash(f"the chord's tree geometry {tree!r} is not valid")
            values.append(value)
        n, s, f, k = values
        return _known(n, s, f, max(k, 2))

    @classmethod
    def fit(cls, n: int) -> Geometry:
        """The producer's geometry for a chord of ``n`` parts (the mark carries it to every part).

        From ``STAGGER_FROM`` parts up, the staggered stripes of the DESIGN notes. Below it the
        stagger would split a column's few rows into leaves of one or two parts (at 64 parts:
        33 leaves and 12 inner nodes), so there is one leaf per column, of about ``SMALL_LEAF``
        parts. A fill of ``stripes * rows`` does that with the same arithmetic (``_phase`` of
        column ``c`` > 0 is then ``c * rows``, past its last row, and column 0 is leaf
        ``stripes``), so a worker that knows only that arithmetic counts these chords as it
        counts every other. Up to ``FLAT_MAX`` leaves the root counts them itself (a fan-in past
        the highest leaf number); more leaves go through inner nodes of ``INNER_FAN_IN``, with
        ``stripes + 1`` a multiple of it so that no inner node is left with a single child.
        (A flat staggered geometry with leaves of 16 rows from 400 parts, all counted by the root,
        saved ~1 KB per part with 48-byte results at 1,000 parts, but its last leaves all queued on
        the root: the body started 1.7-2.0 s after the last part against 0.7 s, at 3.45 requests
        per part against 3.13, on 2 x prefork 12 at 20 ms a request.)
        """
        if n >= STAGGER_FROM:
            return cls(n)
        stripes = max(1, min(STRIPES - 1, -(-n // SMALL_LEAF)))
        fan_in = stripes + 1
        if stripes > FLAT_MAX:
            wide = (stripes + 1) // WIDE_FAN_IN * WIDE_FAN_IN - 1
            if wide >= 16:
                stripes, fan_in = wide, WIDE_FAN_IN
            else:
                stripes = min(15, (stripes + 1) // INNER_FAN_IN * INNER_FAN_IN - 1)
                fan_in = stripes + 1 if stripes <= FLAT_MAX else INNER_FAN_IN
        return cls(n, stripes, stripes * -(-n // stripes), fan_in)

    def to_mark(self) -> dict[str, int]:
        return {"n": self.n, "s": self.stripes, "f": self.fill, "k": self.fan_in}

    def _phase(self, column: int) -> int:
        return column * self.fill // self.stripes

    def leaf_of(self, index: int) -> int:
        """The leaf counting part ``index`` (0 <= index < n)."""
        row, column = divmod(index, self.stripes)
        band = (row + self.fill - self._phase(column)) // self.fill
        return band * self.stripes + column

    def _leaf_rows(self, leaf: int) -> range:
        """The rows of leaf ``leaf``'s column that it counts (part ``row * stripes + column``).

        Bounded by the column's last row, so no row past the chord's end is made and dropped:
        a small chord's fill is its whole column (``fit``), and every part works out the tree's
        levels from its mark, so a filter here cost each part milliseconds of CPU at 500 parts.
        """
        band, column = divmod(leaf, self.stripes)
        first = max(0, (band - 1) * self.fill + self._phase(column))
        end = band * self.fill + self._phase(column)
        rows = -(-(self.n - column) // self.stripes)  # the column's rows below n
        return range(first, max(first, min(end, rows)))

    def leaf_indexes(self, leaf: int) -> list[int]:
        """The part indexes leaf ``leaf`` counts (empty for a leaf no part reaches)."""
        column = leaf % self.stripes
        return [row * self.stripes + column for row in self._leaf_rows(leaf)]

    @cached_property
    def levels(self) -> list[list[int]]:
        """The nodes that count at least one part, level by level; the last level is the root."""
        rows = -(-self.n // self.stripes)
        last = ((rows - 1 + self.fill) // self.fill + 1) * self.stripes
        levels = [[leaf for leaf in range(last) if self._leaf_rows(leaf)]]
        while len(levels) == 1 or len(levels[-1]) > 1:
            levels.append(sorted({node // self.fan_in for node in levels[-1]}))
        return levels

    @property
    def height(self) -> int:
        """The root's level."""
        return len(self.levels) - 1

    @property
    def join_level(self) -> int:
        """The level whose nodes the join reads: they carry every part's slot below them."""
        return min(CARRY_LEVEL, self.height - 1)

    def part_slots(self, level: int, node: int, slots: list[Any]) -> Iterator[tuple[int, Any]]:
        """Each part's slot (index, slot) under a node of ``level`` that carries its children's."""
        for member, slot in zip(self.expected(level, node), slots, strict=True):
            if level == 0:
                yield int(member), slot
            elif not isinstance(slot, list):
                raise ValueError(f"tree node {level}.{node} does not carry node {level - 1}.{member}")
            else:
                yield from self.part_slots(level - 1, int(member), slot)

    def root_value(self, slots: Any) -> str | None:
        """What a node completing into the root carries there: its slots (carrying its children's),
        when the root's children carry them and they fit ``ROOT_CARRY_BUDGET``; else None."""
        if self.height - 1 > CARRY_LEVEL or not isinstance(slots, list):
            return None
        text = json.dumps(slots, separators=(",", ":"))
        others = len(self.expected(self.height, 0)) - 1
        return text if len(text) * others <= ROOT_CARRY_BUDGET else None

    def root_slots(self, values: dict[str, str]) -> list[Any] | None:
        """The root's children's slots from the values a root state carries, when it carries each
        child's (a worker that carries none, or a child over the budget: None, read the nodes)."""
        members = self.expected(self.height, 0)
        if not all(m in values for m in members):
            return None
        try:
            slots = [json.loads(values[m]) for m in members]
        except ValueError:
            return None
        return slots if all(isinstance(s, list) for s in slots) else None

    def parent(self, node: int) -> int:
        return node // self.fan_in

    def expected(self, level: int, node: int) -> list[str]:
        """The members node ``node`` of ``level`` holds once complete."""
        cached = self._children.get((level, node))
        if cached is None:
            if level == 0:
                cached = [str(i) for i in self.leaf_indexes(node)]
            else:
                cached = [str(c) for c in self.levels[level - 1] if c // self.fan_in == node]
            self._children[(level, node)] = cached
        return cached


@lru_cache(maxsize=32)
def _known(n: int, stripes: int, fill: int, fan_in: int) -> Geometry:
    """One geometry per shape and process: every part of a chord reads the same mark, and its
    levels (and the members of the nodes it climbs) are then worked out once, not per part."""
    return Geometry(n, stripes, fill, fan_in)


def load_node(body: bytes) -> dict[str, Any]:
    """A tree node's content: ``{"v": 3, "m": [slot, ...], "by": the member that completed it}``.

    Slots follow ``Geometry.expected``: 0 until counted (``by`` is absent until complete); a leaf's slot is the fingerprint of
    the part's task id followed by its encoded result (nothing after it: read at join time), an
    inner node's is 1.
    """
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("v") != 3 or not isinstance(data.get("m"), list):
        raise ValueError("not an s3result chord tree node (v3)")
    return data


def dump_node(node: dict[str, Any]) -> bytes:
    """A tree node's bytes on the wire (compact JSON, the format ``load_node`` reads)."""
    return json.dumps(node, separators=(",", ":")).encode()
