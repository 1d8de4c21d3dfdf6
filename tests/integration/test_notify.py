"""Notifications on a real store (moto): sent after the result is stored, holding its ETag and never
the result; none without a reply_to or with notify=off. Unit side: tests/test_notify.py.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from celery import Celery, states
from celery.app.task import Context

from s3result.backend import S3Backend
from s3result.results.config import build
from s3result.s3.client import S3Client
from s3result.testing.store import MotoServer
from s3result.waits import notify, notifyformat


def _backend(url: str) -> S3Backend:
    app = Celery("notify-unit", set_as_current=False)
    app.conf.result_backend = url
    app.conf.broker_url = "memory://"
    backend = app.backend
    assert isinstance(backend, S3Backend)
    return backend


def test_a_notification_holds_the_id_the_state_and_the_etag_never_the_result(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored first: when the notification goes, a reader already finds the result in the store."""
    backend = _backend(moto_server.url("notify-order"))
    reader = S3Client(build(url=moto_server.url("notify-order"), environ={}).s3)
    sent: list[tuple[str, str, str, str | None, bytes | None]] = []

    def publish(app: Any, reply_to: str, task_id: str, state: str, etag: str | None) -> bool:
        found = reader.get_or_none(f"notify-order/celery-task-meta-{task_id}")
        sent.append((reply_to, task_id, state, etag, None if found is None else found.body))
        return True

    monkeypatch.setattr(notify, "publish", publish)
    tid = str(uuid.uuid4())
    secret = "a result that never travels over the broker"
    backend.store_result(tid, secret, states.STARTED, request=Context(reply_to="caller-oid"))
    assert sent == []  # only ready states wake a wait
    backend.store_result(tid, secret, states.SUCCESS, request=Context(reply_to="caller-oid"))
    assert len(sent) == 1
    reply_to, task_id, state, etag, stored = sent[0]
    assert (reply_to, task_id, state) == ("caller-oid", tid, states.SUCCESS)
    assert stored is not None and secret.encode() in stored  # in the store before the notification
    assert etag is not None and etag == reader.get_or_none(f"notify-order/celery-task-meta-{tid}").etag
    payload = notifyformat.payload(task_id, state, etag)
    assert json.loads(payload) == {"id": tid, "state": "SUCCESS", "etag": etag}
    assert secret not in payload


def test_no_notification_without_reply_to_or_with_notify_off(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(notify, "publish", lambda app, reply_to, task_id, *a: sent.append(task_id) or True)
    on = _backend(moto_server.url("notify-none"))
    on.store_result(str(uuid.uuid4()), 1, states.SUCCESS)  # no request: nobody to wake
    on.store_result(str(uuid.uuid4()), 1, states.SUCCESS, request=Context(reply_to=""))
    off = _backend(moto_server.url("notify-none") + "?notify=off")
    off.store_result(str(uuid.uuid4()), 1, states.SUCCESS, request=Context(reply_to="caller-oid"))
    assert sent == []
