"""moto's server, with its conditional writes made atomic as S3's are.

moto (5.2) answers a conditional PUT by checking ``If-Match`` / ``If-None-Match`` and then
writing, with no lock between the two, on a threaded server. Two PUTs carrying the same
``If-Match`` can therefore both succeed, and a compare-and-swap counter loses an increment
(seen here: a 1,000-part chord whose counter stopped at 995, every process pinned to one
CPU). Amazon S3 decides a conditional write atomically, and s3result relies on that. The
embedded store runs moto's own server through this module, which serialises each object
PUT and DELETE, check and write together; nothing else of moto changes.

    python -m s3result.testing.atomic_moto -H 127.0.0.1 -p PORT   # moto.server's own arguments
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["make_conditional_writes_atomic"]

_write_lock = threading.Lock()


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(self: Any) -> Any:
        with _write_lock:
            return method(self)

    locked.__s3result_atomic__ = True  # type: ignore[attr-defined]
    return locked


def make_conditional_writes_atomic() -> None:
    """Wrap moto's object PUT and DELETE handlers in one lock (idempotent)."""
    from moto.s3.responses import S3Response

    for name in ("put_object", "delete_object"):
        method = getattr(S3Response, name)
        if not getattr(method, "__s3result_atomic__", False):
            setattr(S3Response, name, _serialised(method))


if __name__ == "__main__":  # pragma: no cover - run as moto's server by s3result.testing.store
    make_conditional_writes_atomic()
    from moto.server import main

    main()
