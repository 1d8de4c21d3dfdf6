"""One S3 client per process and settings, whatever Celery's pool.

Celery's ``app.backend`` is thread-local: every thread of a ``threads`` pool, and every
greenlet of a ``gevent`` or ``eventlet`` pool (their monkey-patching makes thread-locals
greenlet-local), builds a backend of its own. A client kept on the backend would then be a
new connection pool, credential chain, retry quota and conditional-write verdict per task:
5,000 tasks on ``-P gevent -c 100`` made 5,000 TCP connections and fetched container
credentials 5,006 times. So clients live here, one per ``Settings`` in the process, and every
backend instance with the same settings shares it.

After a fork the child keeps the same ``S3Client`` object: its pool is keyed by PID and made
anew on the child's first request (the parent's sockets are never written on), while what
is safe to inherit stays: credentials already fetched, the learnt region and clock offset.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..s3.client import S3Client
from ..s3.process import PROCESS

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["CLIENTS", "MAX_CLIENTS", "shared_client"]

#: Distinct settings kept per process; a worker has one or two. Evicted clients stay usable by
#: whoever holds them; the next backend with those settings gets a new one.
MAX_CLIENTS = 64


def _no_clients() -> OrderedDict[Settings, S3Client]:
    return OrderedDict()


# The process's clients, the one registry of them (see above), oldest first.
CLIENTS = PROCESS.slot(
    "results.clients",
    _no_clients,
    fork="kept",
    why="one client per settings; its pool is keyed by PID and made anew in a child, its credentials still hold",
)
_CLIENTS_LOCK = PROCESS.slot("results.clients-lock", threading.Lock, fork="renewed", why="guards the clients")


def shared_client(settings: Settings) -> S3Client:
    """The process's client for ``settings``, made on first use."""
    clients = CLIENTS.get()
    client = clients.get(settings)
    if client is not None:
        return client
    with _CLIENTS_LOCK.get():
        client = clients.get(settings)
        if client is None:
            client = clients[settings] = S3Client(settings.s3)
            while len(clients) > MAX_CLIENTS:
                clients.popitem(last=False)
        return client
