"""One client per process and settings (s3result/results/clients.py), shared by every backend instance.

Integration side: tests/e2e/test_pools.py counts connections and credential fetches of real
gevent, eventlet and threads workers; tests/integration/test_fork.py forks with the registry's
lock held.
"""

from __future__ import annotations

import os
import threading
from unittest import mock

from celery import Celery

from s3result.backend import S3Backend
from s3result.results import clients, config

URL = "s3result+http://AKID:SECRET@127.0.0.1:9/bucket/prefix"


def _app(url: str = URL) -> Celery:
    app = Celery(set_as_current=False)
    app.conf.result_backend = url
    return app


def test_backends_with_the_same_settings_share_one_client() -> None:
    first, second = _app().backend, _app().backend
    assert first is not second
    assert first.client is second.client


def test_other_settings_get_another_client() -> None:
    assert _app().backend.client is not _app(URL + "?max_connections=3").backend.client


def test_every_thread_backend_of_an_app_shares_the_client() -> None:
    """``app.backend`` is thread-local (greenlet-local under gevent): one backend per thread."""
    app = _app()
    seen: list[tuple[S3Backend, object]] = []

    def run() -> None:
        backend = app.backend
        seen.append((backend, backend.client))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b, _ in seen}) == 8
    assert len({id(c) for _, c in seen}) == 1


def test_a_forked_child_keeps_the_client_but_not_its_pool() -> None:
    """The client object is inherited (credentials, quota, verdict); its pool is made anew."""
    client = clients.shared_client(config.build(url=URL, environ={}))
    parent_slot = client._get_slot()
    with mock.patch("s3result.s3.pool.os.getpid", return_value=os.getpid() + 1):
        assert clients.shared_client(config.build(url=URL, environ={})) is client
        child_slot = client._get_slot()
    assert child_slot is not parent_slot
    assert child_slot.transport is not parent_slot.transport


def test_the_registry_is_bounded() -> None:
    made = [clients.shared_client(config.build(url=f"{URL}?max_connections={n}", environ={})) for n in range(1, 80)]
    assert len(clients.CLIENTS.get()) <= clients.MAX_CLIENTS
    # The newest are kept; an evicted client still works for whoever holds it.
    assert clients.shared_client(config.build(url=f"{URL}?max_connections=79", environ={})) is made[-1]
