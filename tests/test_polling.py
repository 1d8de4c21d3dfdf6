"""The polling schedule, its setting, and which failures waiting can never heal (pure logic)."""

from __future__ import annotations

import itertools
import socket
import ssl

import pytest

from s3result.errors import (
    AccessDenied,
    BodyTooLarge,
    ConfigError,
    ConnectError,
    EndpointError,
    NotFound,
    RequestTimeout,
    ResultTooLarge,
    S3Error,
    ServerError,
    Unauthenticated,
)
from s3result.results import config
from s3result.s3.failures import connect_error
from s3result.s3.retry import is_permanent, is_retryable
from s3result.waits.polling import delays


def test_delays_double_from_the_first_up_to_the_interval() -> None:
    assert list(itertools.islice(delays(0.025, 0.5), 7)) == [0.025, 0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert list(itertools.islice(delays(None, 0.5), 3)) == [0.5, 0.5, 0.5]  # fixed polling
    assert list(itertools.islice(delays(2.0, 0.5), 2)) == [0.5, 0.5]  # never above the cap


def _gets(duration: float, first: float, interval: float) -> int:
    """Polls until the first one at or after ``duration``, by walking the schedule."""
    t, n, waits = 0.0, 1, delays(first, interval)
    while t < duration:
        t += next(waits)
        n += 1
    return n


def test_gets_per_wait_meet_the_bars() -> None:
    assert _gets(0.2, 0.025, 0.5) <= 6  # a 0.1 s task seen by ~0.2 s
    assert _gets(5.0, 0.025, 0.5) <= 5 / 0.5 + 6
    assert _gets(5.0, 0.025, 0.5) == 15  # 1 + K (5) + ceil((5 - 0.775) / 0.5) (9), see polling.py


def test_poll_initial_delay_setting() -> None:
    assert config.build(url="s3result://bucket-a", environ={}).poll_initial_delay == 0.025
    assert config.build(url="s3result://bucket-a?poll_initial_delay=0.1", environ={}).poll_initial_delay == 0.1
    for off in ("off", "fixed", "none", "false"):
        assert config.build(url=f"s3result://bucket-a?poll_initial_delay={off}", environ={}).poll_initial_delay is None
    for bad in ("0", "-1", "soon", "61"):
        with pytest.raises(ConfigError) as exc:
            config.build(url=f"s3result://bucket-a?poll_initial_delay={bad}", environ={})
        assert str(exc.value).startswith("poll_initial_delay: ") and "off for fixed polling" in str(exc.value)


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (NotFound(status=404, code="NoSuchBucket"), True),
        (NotFound(status=404, code="NoSuchKey"), False),
        (AccessDenied(status=403, code="AccessDenied"), True),
        (AccessDenied(status=403, code="SignatureDoesNotMatch"), True),
        (Unauthenticated(status=401), True),
        (S3Error(status=400, code="AuthorizationHeaderMalformed"), True),
        (S3Error(status=503, code="SlowDown"), False),
        (ServerError(status=500), False),
        (S3Error(status=400, code="RequestTimeout"), False),
        (EndpointError("no such host"), True),
        (ConnectError("refused"), False),
        (RequestTimeout("silent"), False),
        (ResultTooLarge("big"), True),
        (BodyTooLarge("big"), True),
    ],
)
def test_what_waiting_cannot_heal(exc: BaseException, permanent: bool) -> None:
    assert is_permanent(exc) is permanent
    if permanent:
        assert not is_retryable(exc)


def _wrapped(inner: BaseException) -> BaseException:
    outer = OSError("connect failed")
    outer.__cause__ = inner
    return outer


def test_connect_failures_are_classified_by_their_cause() -> None:
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    wrong.reason = "WRONG_VERSION_NUMBER"
    err = connect_error(_wrapped(wrong))
    assert isinstance(err, EndpointError) and "the server speaks plain HTTP: use s3result+http://" in str(err)
    cert = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    err = connect_error(_wrapped(cert))
    assert isinstance(err, EndpointError) and "ca_bundle" in str(err)
    err = connect_error(_wrapped(socket.gaierror(socket.EAI_NONAME, "Name or service not known")))
    assert isinstance(err, EndpointError) and "endpoint_url" in str(err)
    err = connect_error(_wrapped(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")))
    assert type(err) is ConnectError  # the resolver may answer next time
    err = connect_error(_wrapped(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")))
    assert type(err) is ConnectError
    err = connect_error(_wrapped(ConnectionRefusedError(111, "Connection refused")))
    assert type(err) is ConnectError and "Connection refused" in str(err)
