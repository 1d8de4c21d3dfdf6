"""Notifications (s3result.notify): the setting, a broker that fails, a broker that carries none.

Integration (moto): tests/integration/test_notify.py, the result stored before its notification goes.
End to end, on real Redis and RabbitMQ brokers and workers: tests/e2e/test_notify.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from celery import Celery, states

from s3result import notify
from s3result.config import build
from s3result.errors import ConfigError


def test_notify_is_on_by_default_and_can_be_turned_off() -> None:
    assert build(url="s3result://bkt").notify is True
    assert build(url="s3result://bkt?notify=off").notify is False
    assert build(url="s3result://bkt", options={"notify": "no"}).notify is False
    with pytest.raises(ConfigError) as exc:
        build(url="s3result://bkt?notify=sometimes")
    assert str(exc.value).startswith("notify")


def test_a_failing_broker_never_fails_the_task(caplog: pytest.LogCaptureFixture) -> None:
    """publish() swallows the broker's error (the caller polls) and says so once per process."""

    class Broken:
        conf = Celery("broken", set_as_current=False).conf

        def connection_for_write(self) -> Any:
            raise ConnectionError("broker down")

    notify._said.discard("publish")
    with caplog.at_level(logging.WARNING, logger="s3result.notify"):
        assert notify.publish(Broken(), "oid", "tid", states.SUCCESS, None) is False
        assert notify.publish(Broken(), "oid", "tid", states.SUCCESS, None) is False
    lines = [r for r in caplog.records if "could not notify" in r.getMessage()]
    assert len(lines) == 1 and "broker down" in lines[0].getMessage()


def test_no_listener_where_the_broker_carries_no_notifications(caplog: pytest.LogCaptureFixture) -> None:
    """A memory (or SQS, filesystem...) broker: waits poll as without notifications, said once at INFO."""
    app = Celery("notify-memory", set_as_current=False)
    app.conf.broker_url = "memory://"
    assert notify.listener_for(app) is None  # this process sent nothing: nobody would notify it
    notify.sent_from(app, app.thread_oid)
    notify._said.discard("memory")
    with caplog.at_level(logging.INFO, logger="s3result.notify"):
        assert notify.listener_for(app) is None
        assert notify.listener_for(app) is None
    lines = [r for r in caplog.records if "poll the store" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert notify.broker_kind(app) == "memory"
