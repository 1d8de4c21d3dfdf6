"""A caller that finds every pooled connection busy, waiting on a store that answers nothing.

Under gevent with ``-c 100`` and ``max_connections=10``, 90 greenlets wait for a connection
while 10 wait on a silent store. Their error must point at the store, not advise raising
``max_connections`` (more connections to a store that answers none change nothing).
"""

from __future__ import annotations

import threading
import time

import pytest

from s3result.errors import ConnectError, RequestTimeout
from s3result.results import config
from s3result.s3.client import S3Client


def test_a_full_pool_behind_a_silent_store_blames_the_store(silent_port: int) -> None:
    settings = config.build(
        url=f"s3result+http://AKID:SECRET@127.0.0.1:{silent_port}/bucket?read_timeout=4&max_connections=1&max_attempts=1",
        environ={},
    )
    client = S3Client(settings.s3)
    first: list[BaseException] = []
    holder = threading.Thread(target=lambda: first.append(pytest.raises(RequestTimeout, client.get, "a").value))
    holder.start()
    while client._get_slot().transport._slots._value:  # type: ignore[attr-defined] # until the holder has the one slot
        threading.Event().wait(0.01)
    # The second call's own bound (1 s) ends well before the holder's read timeout (4 s) frees
    # the one slot, however late this thread runs on a loaded machine.
    with pytest.raises(ConnectError) as exc:
        client.get("b", deadline=time.monotonic() + 1.0)
    holder.join(10)
    text = str(exc.value)
    assert "no pooled connection came free" in text and "answered none" in text, text
    assert "raise max_connections" not in text, text
