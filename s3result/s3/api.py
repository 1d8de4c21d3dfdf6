"""What a caller needs of an S3 client, as a type: the verbs, the configuration, the clock.

``ObjectStore`` is the part of ``S3Client`` that the conditional-write probe and its stored
verdict use: read a key, write one (conditionally), delete one, know the configuration and the
store's clock. Code that only *calls* a client names it through this protocol, not the class:
``S3Client`` stands on the signer, the pool, the retry policy and the credential chain (five
modules deep), and a module that imports it for an annotation is as deep as all of them. This
one imports only plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .config import S3Config
    from .replies import GetResult
    from .request import PutMode

__all__ = ["ObjectStore"]


class ObjectStore(Protocol):
    """A client of one bucket: ``S3Client`` is one (checked by mypy where it is passed)."""

    @property
    def config(self) -> S3Config:
        """The bucket, endpoint and limits this client sends to."""
        ...

    @property
    def clock_offset(self) -> float:
        """Seconds to add to the local clock to read the store's (learnt from its answers)."""
        ...

    def get_or_none(self, key: str, *, deadline: float | None = None, attempts: int | None = None) -> GetResult | None:
        """GET ``key``, None when it is missing."""
        ...

    def put(
        self,
        key: str,
        body: bytes,
        *,
        mode: PutMode = ...,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> str:
        """PUT a whole object (``mode`` makes it conditional) and return its ETag."""
        ...

    def delete(self, key: str, *, deadline: float | None = None) -> None:
        """DELETE ``key``; a missing key is not an error."""
        ...
