"""Race-free writes, the CAS counter and the conditional-write probe, on real stores.

Unit side: tests/test_client.py (conditional headers). End to end: tests/e2e/test_chords.py.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from typing import Any

import pytest
from celery import Celery, states

from conformance.servers import Target
from s3result.backend import S3Backend
from s3result.errors import AccessDenied
from s3result.results import config, precondition
from s3result.s3.client import S3Client
from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer


def _backend(url: str, **conf: Any) -> S3Backend:
    app = Celery("cond", set_as_current=False)
    app.conf.result_backend = url
    app.conf.update(conf)
    backend = app.backend
    assert isinstance(backend, S3Backend)
    return backend


def test_probe_verdicts_per_store(moto_server: MotoServer, nanio_target: Target, ceph_target: Target) -> None:
    verdicts = {}
    for name, url in (
        ("moto", moto_server.url("probe")),
        ("nanio", nanio_target.url("probe")),
        ("ceph", ceph_target.url("probe")),
    ):
        verdicts[name] = precondition.probe(S3Client(config.build(url=url, environ={}).s3), "probe")
    assert verdicts["moto"].ok, verdicts["moto"]
    assert not verdicts["nanio"].ok and "ignores If-None-Match" in verdicts["nanio"].reason
    assert not verdicts["ceph"].ok and "without the ETag's quotes" in verdicts["ceph"].reason
    # The same verdicts as the conformance matrix: a store passes the probe exactly when no
    # conditional-write check is documented as diverging for it.
    from conformance.divergences import DIVERGENCES

    conditional = {
        "if_none_match_on_existing_key",
        "if_match_current_etag",
        "if_match_stale_etag",
        "compare_and_swap_counter",
    }
    for name, verdict in verdicts.items():
        diverges = any((name, check) in DIVERGENCES for check in conditional)
        assert verdict.ok is not diverges, (name, verdict)


def test_probe_cleans_up_its_key(moto_server: MotoServer, boto3_client: Any) -> None:
    precondition.probe(S3Client(config.build(url=moto_server.url("probeclean"), environ={}).s3), "probeclean")
    listed = boto3_client.list_objects_v2(Bucket=moto_server.bucket, Prefix="probeclean/")
    assert listed.get("KeyCount", 0) == 0


def test_forced_modes_skip_the_probe(moto_server: MotoServer) -> None:
    on = _backend(moto_server.url("forced") + "?conditional_writes=etag")
    off = _backend(moto_server.url("forced") + "?conditional_writes=disabled")
    assert on.conditional_support.forced and on.native_chords
    assert off.conditional_support.forced and not off.native_chords


def test_first_state_write_is_one_request(moto_server: MotoServer) -> None:
    proxy = CountingProxy("127.0.0.1", moto_server.port)
    try:
        url = f"s3result+http://{moto_server.access_key}:{moto_server.secret_key}@127.0.0.1:{proxy.port}/{moto_server.bucket}/onereq"
        backend = _backend(url)
        assert backend.native_chords  # probe done before counting
        tid = str(uuid.uuid4())
        before = proxy.snapshot()
        backend.store_result(tid, 1, states.SUCCESS)
        assert proxy.snapshot() - before == {"PUT": 1}
        before = proxy.snapshot()
        backend.get_task_meta(tid, cache=False)
        assert proxy.snapshot() - before == {"GET": 1}
        before = proxy.snapshot()
        backend.get_task_meta(str(uuid.uuid4()), cache=False)
        assert proxy.snapshot() - before == {"GET": 1}
        # A state update by the process that wrote the earlier state: one If-Match with its ETag.
        tid2 = str(uuid.uuid4())
        backend.store_result(tid2, None, states.STARTED)
        before = proxy.snapshot()
        backend.store_result(tid2, 2, states.SUCCESS)
        assert proxy.snapshot() - before == {"PUT": 1}
        # By another process (no ETag remembered): the create fails (1), the state is read (1), If-Match (1).
        tid3 = str(uuid.uuid4())
        _backend(moto_server.url("onereq")).store_result(tid3, None, states.STARTED)
        before = proxy.snapshot()
        backend.store_result(tid3, 2, states.SUCCESS)
        assert proxy.snapshot() - before == {"PUT": 2, "GET": 1}
    finally:
        proxy.close()


@pytest.mark.parametrize("late_state", [states.STARTED, states.FAILURE, states.RETRY, states.SUCCESS])
def test_late_duplicate_never_overwrites_success(moto_server: MotoServer, late_state: str) -> None:
    backend = _backend(moto_server.url("late"))
    tid = str(uuid.uuid4())
    backend.store_result(tid, None, states.STARTED)
    backend.store_result(tid, "the real result", states.SUCCESS)
    late = RuntimeError("late duplicate") if late_state in (states.FAILURE, states.RETRY) else "late"
    backend.store_result(tid, late, late_state)
    meta = backend.get_task_meta(tid, cache=False)
    assert meta["status"] == states.SUCCESS and meta["result"] == "the real result"


def test_late_duplicate_racing_the_success_never_wins(moto_server: MotoServer) -> None:
    """Many duplicate deliveries write STARTED/FAILURE while one writes SUCCESS."""
    backend = _backend(moto_server.url("race"))
    for _ in range(5):
        tid = str(uuid.uuid4())
        backend.store_result(tid, None, states.STARTED)
        barrier = threading.Barrier(9)

        def dup(i: int, tid: str = tid, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            if i % 2:
                backend.store_result(tid, RuntimeError(f"dup {i}"), states.FAILURE)
            else:
                backend.store_result(tid, {"pid": i}, states.STARTED)

        def win(tid: str = tid, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            backend.store_result(tid, "winner", states.SUCCESS)

        threads = [threading.Thread(target=dup, args=(i,)) for i in range(8)] + [threading.Thread(target=win)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Whatever the interleaving, once SUCCESS is stored nothing replaces it.
        meta = backend.get_task_meta(tid, cache=False)
        assert meta["status"] == states.SUCCESS and meta["result"] == "winner"


def test_counter_under_contention_16_threads_x_100(moto_server: MotoServer) -> None:
    backend = _backend(moto_server.url("counter"))
    assert backend.native_chords
    key = b"chord-unlock-" + uuid.uuid4().hex.encode()
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(100):
            value = backend.incr(key)
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 1601))
    assert backend.get(key) is not None and backend.get(key).split(b"\n")[0] == b"1600"  # type: ignore[union-attr]


def test_fallback_store_uses_read_then_write(nanio_target: Target) -> None:
    backend = _backend(nanio_target.url("fallback"))
    assert not backend.native_chords
    tid = str(uuid.uuid4())
    backend.store_result(tid, "ok", states.SUCCESS)
    backend.store_result(tid, None, states.STARTED)  # Celery's own rule still applies
    assert backend.get_task_meta(tid, cache=False)["result"] == "ok"


@pytest.mark.skipif(
    shutil.which("swift-proxy-server") is None,
    reason="Swift is opt-in (no swift-proxy-server on PATH): apt-get install swift swift-proxy swift-object "
    "swift-account swift-container memcached",
)
def test_probe_verdict_on_swift() -> None:
    from conformance.divergences import DIVERGENCES
    from conformance.servers import swift_target

    with swift_target(bucket="s3result-tests") as target:
        verdict = precondition.probe(S3Client(config.build(url=target.url("probe"), environ={}).s3), "probe")
        assert not verdict.ok and "501" in verdict.reason
        assert ("swift", "if_none_match_on_existing_key") in DIVERGENCES
        # And the backend falls back cleanly: a stored result still round-trips.
        backend = _backend(target.url("fallback"))
        assert not backend.native_chords
        tid = str(uuid.uuid4())
        backend.store_result(tid, "on swift", states.SUCCESS)
        assert backend.get_task_meta(tid, cache=False)["result"] == "on swift"


def test_a_read_only_key_fails_the_probe_with_nothing_to_clean_up(
    moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe's first PUT is refused, so no key was made: no DELETE, no "could not delete" warning."""
    proxy = CountingProxy("127.0.0.1", moto_server.port)
    url = (
        f"s3result+http://{moto_server.readonly_access_key}:{moto_server.readonly_secret_key}"
        f"@127.0.0.1:{proxy.port}/{moto_server.bucket}/ro-probe"
    )
    try:
        with caplog.at_level(logging.WARNING, logger="s3result"), pytest.raises(AccessDenied) as exc:
            precondition.probe(S3Client(config.build(url=url, environ={}).s3), "ro-probe")
    finally:
        proxy.close()
    assert "s3:PutObject" in str(exc.value)
    assert proxy.snapshot() == {"PUT": 1}, proxy.snapshot()
    assert not [r for r in caplog.records if "could not delete" in r.getMessage()], caplog.text
