"""One request's way through the client's pipeline: attempts made, corrections spent, quota held.

Kept apart from ``client`` so the pipeline's steps read as functions of a request and its
progress; the client makes one ``Progress`` per ``send``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .limiter import Pacer, ThrottledRequest

__all__ = ["AGAIN", "Again", "Progress"]


@dataclass(slots=True)
class Progress:
    """One request's way through the pipeline: attempts made, corrections spent, quota held."""

    max_attempts: int
    pacer: Pacer
    attempt: int = 0
    cost: int | None = None
    fixed_region: bool = False
    fixed_clock: bool = False
    fixed_token: bool = False
    corrupted: bool = False
    #: Set once the store has throttled this request: its turns and its budget (``limiter``).
    throttled: ThrottledRequest | None = None
    #: When the current attempt's turn was (for the limiter's measure of the store's answer).
    sent: float = 0.0


class Again:
    """The classify step's answer when a correction was made: sign and send again at once."""


AGAIN = Again()
