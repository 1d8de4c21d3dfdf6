"""A chord counter's state as stored (JSON), and the producer's mark on the body signature.

The formats on the wire, apart from the code that counts: the firing part and the tree read
them without importing the S3 client. Older workers read and write the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ("MARK", "Counted", "CounterState", "Outcome", "marking")

#: The key in the body signature that carries the producer's decision to every part.
MARK = "s3result_chord"

Outcome = Literal["fire", "wait", "late", "failed"]
#: An outcome, with the counter's complete state when "fire" knows it (the state it wrote).
Counted = tuple[Outcome, "CounterState | None"]


def marking(chord: Any) -> dict[str, Any] | None:
    """The producer's decision carried by ``request.chord``, or None (an older producer)."""
    mark = chord.get(MARK) if isinstance(chord, dict) else None
    return mark if isinstance(mark, dict) and isinstance(mark.get("native"), bool) else None


@dataclass
class CounterState:
    """The counter object's content (JSON)."""

    size: int | None = None
    parts: list[str] = field(default_factory=list)
    done: dict[str, Any] | None = None
    failed: str | None = None
    #: The token of the write that set ``failed``: a retry whose reply was lost knows it is its own.
    failed_token: str | None = None
    #: Each counted part's encoded result when small (see ``tree``): the join reads no more.
    values: dict[str, str] = field(default_factory=dict)
    #: The root of a tree (its members are nodes, not parts). Written as version 3, which
    #: workers that know no trees refuse (their parts fail) instead of counting parts in it.
    tree: bool = False

    @classmethod
    def load(cls, body: bytes) -> CounterState:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") not in (2, 3):
            raise ValueError("not an s3result chord counter (v2 or v3)")
        parts = list(data.get("parts") or [])
        values = data.get("values")
        return cls(
            data.get("size"),
            parts,
            data.get("done"),
            data.get("failed"),
            data.get("failed_token"),
            dict(values) if isinstance(values, dict) else {},
            data.get("v") == 3,
        )

    def dump(self) -> bytes:
        body: dict[str, Any] = {
            "v": 3 if self.tree else 2,
            "size": self.size,
            "parts": self.parts,
            "done": self.done,
            "failed": self.failed,
        }
        if self.failed_token is not None:
            body["failed_token"] = self.failed_token
        if self.values:
            body["values"] = self.values
        return json.dumps(body, separators=(",", ":")).encode()

    @property
    def complete(self) -> bool:
        return self.size is not None and len(self.parts) >= self.size
