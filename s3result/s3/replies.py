"""What the verbs answer: a whole object with its ETag, and what a HEAD tells.

Plain values, apart from the client that makes them, so that callers can name them (and tests
build them) without importing the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["GetResult", "HeadResult"]


@dataclass(frozen=True, slots=True)
class GetResult:
    """A whole object and its ETag (and the store's ``Server`` header, which names its software)."""

    body: bytes
    etag: str
    server: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class HeadResult:
    """What HEAD tells: ETag, size and the response headers."""

    etag: str
    size: int
    headers: Mapping[str, str]
