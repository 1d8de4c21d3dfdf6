"""What a broker's listening loop needs of its listener: the seam between the two.

The listener (``notifylistener``) owns the state and the waits; each broker's loop
(``notifyredis``, ``notifyamqp``) owns a connection. A loop sees the listener only through this
protocol, so the loops need not import the listener, and the listener picks its loop by kind.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Listening"]


class Listening(Protocol):
    """The listener as its broker loop sees it."""

    #: The Celery app whose broker the loop connects to.
    app: Any
    #: RabbitMQ: this process's queue.
    queue: str
    #: Readable when the loop should look again (a channel wanted, or a stop): the Redis loop selects on it.
    wake_fd: int

    @property
    def stopped(self) -> bool: ...

    def wait_for_wanted(self) -> bool:
        """Block until some channel is wanted (True) or the listener stopped (False)."""
        ...

    def wanted(self) -> set[str]:
        """A copy of the reply channels wanted now."""
        ...

    def up(self, confirmed: set[str], awaiting: set[str]) -> None:
        """Connected (again), with ``confirmed`` subscribed and ``awaiting`` on the way."""
        ...

    def confirm(self, reply_tos: set[str]) -> None:
        """The broker confirmed these subscriptions."""
        ...

    def deliver(self, data: Any) -> None:
        """A notification came: wake the waits on its id."""
        ...

    def stalled(self) -> set[str]:
        """RabbitMQ: the binds a wait could not make, not confirmed yet."""
        ...

    def unstall(self, bound: set[str]) -> None:
        """RabbitMQ: the loop made these binds."""
        ...
