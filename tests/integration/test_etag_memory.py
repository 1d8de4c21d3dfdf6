"""Later states of a task cost one PUT: the ETag this process wrote is remembered (s3result/results/etags.py).

Counted at the wire with a proxy in front of moto. The lost-reply case uses the fault proxy:
the ``If-Match`` PUT is applied by the store but its answer never arrives. The end-to-end
count with a real worker (``task_track_started``) is in tests/e2e/test_requests.py.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery, states

from s3result import backend as backend_module
from s3result.errors import TransportError
from s3result.results.etags import EtagMemory
from s3result.results.store import ETAGS
from s3result.s3.config import StoreId
from s3result.testing.faults import FaultProxy
from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer


def _url(moto: MotoServer, port: int, prefix: str, query: str = "") -> str:
    return f"s3result+http://{moto.access_key}:{moto.secret_key}@127.0.0.1:{port}/{moto.bucket}/{prefix}{query}"


def _backend(url: str) -> backend_module.S3Backend:
    app = Celery("etags", set_as_current=False)
    app.conf.result_backend = url
    b = app.backend
    assert isinstance(b, backend_module.S3Backend)
    return b


@pytest.fixture
def counting(moto_server: MotoServer) -> Iterator[CountingProxy]:
    proxy = CountingProxy("127.0.0.1", moto_server.port)
    yield proxy
    proxy.close()


def test_started_then_success_is_two_puts_and_no_get(moto_server: MotoServer, counting: CountingProxy) -> None:
    b = _backend(_url(moto_server, counting.port, "etags"))
    b.store_result(str(uuid.uuid4()), 0, states.SUCCESS)  # the probe runs here, not counted below
    tid = str(uuid.uuid4())
    before = counting.snapshot()
    b.store_result(tid, None, states.STARTED)
    b.store_result(tid, None, states.RETRY)
    b.store_result(tid, 7, states.SUCCESS)
    after = counting.snapshot()
    assert after - before == {"PUT": 3}, counting.kinds
    assert b.get_task_meta(tid, cache=False)["result"] == 7


def test_a_write_by_someone_else_falls_back_to_the_read(moto_server: MotoServer, counting: CountingProxy) -> None:
    ours = _backend(_url(moto_server, counting.port, "etags"))
    other = _backend(_url(moto_server, moto_server.port, "etags"))
    tid = str(uuid.uuid4())
    ours.store_result(tid, None, states.STARTED)
    other.store_result(tid, 1, states.SUCCESS)  # a duplicate delivery elsewhere finished first
    before = counting.snapshot()
    ours.store_result(tid, None, states.RETRY)  # the remembered ETag is stale: 412, read, SUCCESS stays
    assert counting.snapshot() - before == {"PUT": 1, "GET": 1}
    assert other.get_task_meta(tid, cache=False)["status"] == states.SUCCESS
    ours.forget(tid)
    ours.store_result(tid, None, states.STARTED)  # forgotten, and remembered ETag gone: created again
    assert ours.get_task_meta(tid, cache=False)["status"] == states.STARTED


def test_success_is_never_remembered_so_a_late_duplicate_reads_first(
    moto_server: MotoServer, counting: CountingProxy
) -> None:
    b = _backend(_url(moto_server, counting.port, "etags"))
    tid = str(uuid.uuid4())
    b.store_result(tid, None, states.STARTED)
    b.store_result(tid, 3, states.SUCCESS)
    b.store_result(tid, None, states.STARTED)  # redelivered in the same process
    assert b.get_task_meta(tid, cache=False)["status"] == states.SUCCESS


def test_lost_reply_to_the_if_match_put_neither_loses_nor_duplicates(moto_server: MotoServer) -> None:
    proxy = FaultProxy("127.0.0.1", moto_server.port, seed=3)
    try:
        b = _backend(_url(moto_server, proxy.port, "etags-lost", "?max_attempts=1"))
        direct = _backend(_url(moto_server, moto_server.port, "etags-lost"))
        tid = str(uuid.uuid4())
        b.store_result(tid, None, states.STARTED)
        proxy.set_faults(reset_response=1.0)
        with pytest.raises(TransportError):
            b.store_result(tid, 5, states.SUCCESS)  # applied by the store, answer lost
        proxy.set_faults()
        assert proxy.stats["reset_response"] == 1
        stored = direct.client.get(direct.store.key(direct.get_key_for_task(tid)))
        assert direct.decode_result(stored.body)["status"] == states.SUCCESS
        b.store_result(tid, 5, states.SUCCESS)  # Celery's retry: 412 on the old ETag, read, same body
        b.store_result(tid, None, states.STARTED)  # a late duplicate: never replaces SUCCESS
        again = direct.client.get(direct.store.key(direct.get_key_for_task(tid)))
        assert again.body == stored.body and again.etag == stored.etag
    finally:
        proxy.close()


def test_lost_reply_retried_by_the_client_resolves_by_reading(moto_server: MotoServer) -> None:
    """The If-Match PUT lands, its reply is lost; the client's own retry meets 412 and reads."""
    import random

    # The proxy rolls its seeded RNG once per request: STARTED passes, SUCCESS loses its reply,
    # the retry (412) and the read pass. Pick a seed whose first rolls do that at odds 0.5.
    wanted = [False, True, False, False, False, False]
    seed = next(n for n in range(10000) if [r < 0.5 for r in _rolls(random.Random(n), 6)] == wanted)
    proxy = FaultProxy("127.0.0.1", moto_server.port, seed=seed)
    try:
        b = _backend(_url(moto_server, proxy.port, "etags-retry", "?max_attempts=3"))
        b.conditional_support  # noqa: B018 - probe first, without faults
        proxy._rng = random.Random(seed)
        tid = str(uuid.uuid4())
        proxy.set_faults(reset_response=0.5)
        b.store_result(tid, None, states.STARTED)
        b.store_result(tid, 9, states.SUCCESS)
        proxy.set_faults()
        assert proxy.stats["reset_response"] == 1
        meta = _backend(_url(moto_server, moto_server.port, "etags-retry")).get_task_meta(tid, cache=False)
        assert meta["status"] == states.SUCCESS and meta["result"] == 9
    finally:
        proxy.close()


def _rolls(rng: object, n: int) -> list[float]:
    return [rng.random() for _ in range(n)]  # type: ignore[attr-defined]


def test_memory_is_bounded_thread_safe_and_empty_after_fork() -> None:
    memory = EtagMemory(size=100)
    store = StoreId("http://etags-fork.test", "bucket")

    def fill(n: int) -> None:
        for i in range(500):
            memory.put(f"{n}-{i}", f'"{i}"')
            memory.get(f"{n}-{i // 2}")

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(memory) == 100
    memory.put("kept", '"e"')
    memory.put("empty", "")
    assert memory.get("kept") == '"e"' and memory.get("empty") is None
    # The process's memory of a store (the slot results.store.ETAGS): emptied in a forked child.
    ETAGS.get(store).put("kept", '"e"')
    ETAGS.get(store)._lock.acquire()  # another thread holds it at the moment of the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        child = ETAGS.get(store)
        os._exit(0 if child.get("kept") is None and len(child) == 0 else 1)
    ETAGS.get(store)._lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ETAGS.get(store).get("kept") == '"e"'
