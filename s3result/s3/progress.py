"""One request's way through the client's pipeline: attempts made, corrections spent, quota held.

Kept apart from ``client`` so the pipeline's steps read as functions of a request and its
progress; the client makes one ``Progress`` per ``send``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .errors import S3Error

__all__ = ["AGAIN", "Again", "Progress", "Turns", "Waiting"]


class Waiting(Protocol):
    """A throttled request's turns and budget (``limiter.ThrottledRequest``)."""

    def turn(self, deadline: float | None) -> float: ...

    def answered(self, error: S3Error, sent: float, wait: float | None) -> None: ...


class Turns(Protocol):
    """What the pipeline asks of a pacer (``limiter.Pacer``): typed here, so judging needs no limiter."""

    active: bool

    def succeeded(self) -> None: ...

    def throttled_request(self, budget: float, method: str, key: str) -> Waiting: ...


@dataclass(slots=True)
class Progress:
    """One request's way through the pipeline: attempts made, corrections spent, quota held."""

    max_attempts: int
    pacer: Turns
    attempt: int = 0
    cost: int | None = None
    fixed_region: bool = False
    fixed_clock: bool = False
    fixed_token: bool = False
    corrupted: bool = False
    #: Set once the store has throttled this request: its turns and its budget (``limiter``).
    throttled: Waiting | None = None
    #: When the current attempt's turn was (for the limiter's measure of the store's answer).
    sent: float = 0.0


class Again:
    """The classify step's answer when a correction was made: sign and send again at once."""


AGAIN = Again()
