"""A request as a value, and the put modes: what the pipeline in ``client`` sends.

Every request the client makes (the four verbs on keys, a bucket subresource, one raw attempt
for a probe) is a ``Request`` handed to ``S3Client.send``, the one pipeline. Conditional writes
are a ``PutMode``, not two flags that could both be set (object_store's ``PutMode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

__all__ = ["PutMode", "Request"]


@dataclass(frozen=True, slots=True)
class PutMode:
    """How a PUT treats what is already there: overwrite it, create only, or update one version.

    ``PutMode.CREATE`` sends ``If-None-Match: *`` (``AlreadyExists`` when the key exists);
    ``PutMode.update(etag)`` sends ``If-Match: etag`` (``PreconditionFailed`` when another
    version is there); ``PutMode.OVERWRITE`` sends neither.
    """

    OVERWRITE: ClassVar[PutMode]
    CREATE: ClassVar[PutMode]

    kind: str
    etag: str | None = None

    @classmethod
    def update(cls, etag: str) -> PutMode:
        """Replace only the version whose ETag is ``etag`` (compare-and-swap)."""
        return cls("update", etag)

    @property
    def header(self) -> tuple[str, str] | None:
        """The conditional header this mode sends, if any."""
        if self.kind == "create":
            return ("if-none-match", "*")
        if self.etag is not None:
            return ("if-match", self.etag)
        return None

    def __repr__(self) -> str:
        return f"PutMode.update({self.etag!r})" if self.kind == "update" else f"PutMode.{self.kind.upper()}"


PutMode.OVERWRITE = PutMode("overwrite")
PutMode.CREATE = PutMode("create")


class Request(NamedTuple):
    """One request for the pipeline: what to send and how far to go for an answer.

    A named tuple, not a frozen dataclass: it is made for every request, and a tuple is built
    in a fraction of the time (a frozen dataclass sets each of its fields through
    ``object.__setattr__``).

    ``key`` names an object; ``subresource`` (``lifecycle``, ``session``) a bucket's instead.
    ``missing_ok``: a 404 for a missing key is an answer (``send`` returns None), not an error.
    ``attempts`` overrides the client's ``max_attempts`` (a poll makes one); ``deadline``
    (``time.monotonic()``) bounds every wait. ``session=False`` signs a directory bucket's
    request with the ordinary credentials (CreateSession itself). ``raw``: one attempt, the
    answer as it came (no classification, no recovery), for probes; ``body_sha256`` overrides
    the signed payload hash (to test that stores check it).
    """

    method: str
    key: str = ""
    subresource: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    body_sha256: str | None = None
    idempotent: bool = True
    creating: bool = False
    retry_on_conflict: bool = False
    missing_ok: bool = False
    deadline: float | None = None
    attempts: int | None = None
    session: bool = True
    raw: bool = False

    @property
    def label(self) -> str:
        """How errors name the request's object: ``'key'`` or ``?subresource``."""
        return f"?{self.subresource}" if self.subresource else repr(self.key)

    @property
    def name(self) -> str:
        """The key, or ``?subresource``: the ``key`` field of an error."""
        return f"?{self.subresource}" if self.subresource else self.key
