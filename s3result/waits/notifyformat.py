"""The notification's format: what a worker publishes to wake a caller, and how it is read back.

``{"id", "state", "etag"}`` as compact JSON, never the result: the store keeps that. Anyone who
can publish on the broker can send anything to a listener, so reading is strict and bounded:
one that is too long, nested or malformed is dropped (``parse`` answers None).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["CHANNEL_PREFIX", "EXCHANGE", "MAX_NOTIFICATION", "MESSAGE_TTL_MS", "parse", "payload"]

#: Redis channel of a reply_to: ``s3result.notify.<reply_to>``.
CHANNEL_PREFIX = "s3result.notify."
#: RabbitMQ: the built-in direct exchange, present in every vhost and never deleted.
EXCHANGE = "amq.direct"
#: RabbitMQ: a notification not consumed within this TTL (ms) is dropped.
MESSAGE_TTL_MS = 60_000
#: Bytes of a notification at most (a real one is ~120; a task id fits an S3 key, under 1 KB):
#: anything longer is dropped unread.
MAX_NOTIFICATION = 2048
_FAILED = frozenset({"FAILURE", "REVOKED"})


def payload(task_id: str, state: str, etag: str | None) -> str:
    """The notification of ``task_id`` reaching ``state`` (its ETag lets the reader skip a stale copy)."""
    return json.dumps({"id": task_id, "state": state, "etag": etag}, separators=(",", ":"))


def parse(data: Any) -> tuple[str, bool] | None:
    """The task id a notification names and whether it says the task failed; None to drop it."""
    if not isinstance(data, (bytes, str)) or len(data) > MAX_NOTIFICATION:
        return None
    try:
        note = json.loads(data)
        task_id = note["id"]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        return None
    if not isinstance(task_id, str):
        return None
    return task_id, isinstance(note, dict) and note.get("state") in _FAILED
