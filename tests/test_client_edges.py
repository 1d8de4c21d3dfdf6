"""S3Client edge cases of clock-skew recovery, and the backend's settings doors, without a network.

Main client tests: tests/test_client.py.
"""

from __future__ import annotations

import email.utils
import pickle

import httpx
import pytest
from celery import Celery
from celery.exceptions import ImproperlyConfigured

from s3result.errors import AccessDenied
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.s3.retry import RetryConfig
from s3result.s3.transport import HttpxTransport

SKEWED = b"<Error><Code>RequestTimeTooSkewed</Code><Message>m</Message></Error>"


def _client(date: str, now: float) -> tuple[S3Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(403, content=SKEWED, headers={"Date": date})

    client = S3Client(
        config.build(url="s3result+http://AKID:SECRET@127.0.0.1:9000/bkt/pre", environ={}).s3,
        transport_factory=lambda base: HttpxTransport(httpx.MockTransport(handler), base),
        retry=RetryConfig(max_attempts=1, base_delay=0.0),
        clock=lambda: now,
        sleep=lambda s: None,
    )
    return client, seen


@pytest.mark.parametrize("date", ["not a date", "Thu, 99 Foo 2024 99:99:99 GMT"])
def test_unparseable_date_is_not_a_clock_correction(date: str) -> None:
    client, seen = _client(date, 1_700_000_000.0)
    with pytest.raises(AccessDenied):
        client.get("k")
    assert len(seen) == 1 and client.clock_offset == 0.0


def test_a_skew_under_a_second_is_not_corrected() -> None:
    now = 1_700_000_000.0
    client, seen = _client(email.utils.formatdate(now + 0.4, usegmt=True), now)
    with pytest.raises(AccessDenied):
        client.get("k")
    assert len(seen) == 1 and client.clock_offset == 0.0


def test_bad_settings_are_improperly_configured_naming_the_setting() -> None:
    app = Celery(set_as_current=False)
    app.conf.result_backend = "s3result+http://A:S@127.0.0.1:9/b/prefix"
    with pytest.raises(ImproperlyConfigured, match="s3result result backend: bucket"):
        app.backend  # noqa: B018


def test_backend_uri_masks_the_secret_and_pickles() -> None:
    app = Celery(set_as_current=False)
    app.conf.result_backend = "s3result+http://AKID:TOPSECRET@127.0.0.1:9/bucket/prefix"
    backend = app.backend
    assert "TOPSECRET" not in backend.as_uri() and "TOPSECRET" in backend.as_uri(include_password=True)
    restored = pickle.loads(pickle.dumps(backend))  # a worker's backend travels with its URL
    assert type(restored) is type(backend) and restored.settings == backend.settings


_NO_SUCH_KEY = b"<Error><Code>NoSuchKey</Code></Error>"


def test_close_shuts_the_read_executor_and_is_idempotent() -> None:
    client = S3Client(
        config.build(url="s3result+http://AKID:SECRET@127.0.0.1:9000/bkt/pre", environ={}).s3,
        transport_factory=lambda base: HttpxTransport(
            httpx.MockTransport(lambda r: httpx.Response(404, content=_NO_SUCH_KEY)), base
        ),
    )
    assert client.get_many(["a", "b"]) == [None, None]
    executor = client._get_slot().executor
    assert executor is not None
    client.close()
    client.close()  # nothing left to close
    with pytest.raises(RuntimeError):
        executor.submit(print)
