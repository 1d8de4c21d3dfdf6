"""S3Client without a network: httpx.MockTransport stands in for the store.

Integration: tests/integration/test_moto.py runs the same verbs against moto server.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
from collections.abc import Callable
from unittest import mock

import httpx
import pytest

from s3result.errors import (
    AccessDenied,
    AlreadyExists,
    ConnectError,
    CorruptResponse,
    InvalidKey,
    NotFound,
    PreconditionFailed,
    RequestTimeout,
    S3Error,
    ServerError,
)
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.s3.request import PutMode
from s3result.s3.retry import RetryConfig
from s3result.s3.transport import HttpxTransport

SECRET = "SECRETsecretSECRET"
Handler = Callable[[httpx.Request], httpx.Response]


def _xml(code: str, message: str = "m", extra: str = "") -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message>{extra}<RequestId>RID</RequestId></Error>".encode()


def make(
    handler: Handler,
    url: str = f"s3result+http://AKID:{SECRET}@127.0.0.1:9000/bkt/pre",
    *,
    clock: Callable[[], float] | None = None,
    attempts: int = 3,
) -> S3Client:
    return S3Client(
        config.build(url=url, environ={}).s3,
        transport_factory=lambda base: HttpxTransport(httpx.MockTransport(handler), base),
        retry=RetryConfig(max_attempts=attempts, base_delay=0.0),
        sleep=lambda s: None,
        **({"clock": clock} if clock else {}),
    )


def test_get_is_one_signed_request_with_path_style_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"body", headers={"ETag": f'"{hashlib.md5(b"body").hexdigest()}"'})

    got = make(handler).get("pre/celery-task-meta-a b")
    assert got.body == b"body"
    assert len(seen) == 1
    req = seen[0]
    assert req.method == "GET"
    assert req.url.raw_path == b"/bkt/pre/celery-task-meta-a%20b"
    assert req.headers["host"] == "127.0.0.1:9000"
    assert req.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in req.headers["authorization"]


def test_put_sends_conditional_and_sse_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"ETag": '"e1"'})

    client = make(
        handler, "s3result+http://AKID:S@127.0.0.1:9000/bkt?sse=aws:kms&sse_kms_key_id=kk&storage_class=STANDARD_IA"
    )
    assert client.put("k", b"v", mode=PutMode.CREATE, content_type="application/json", metadata={"Task": "t"}) == '"e1"'
    client.put("k", b"v", mode=PutMode.update('"e1"'))
    first, second = seen
    assert first.headers["if-none-match"] == "*" and "if-match" not in first.headers
    assert second.headers["if-match"] == '"e1"'
    assert first.headers["x-amz-server-side-encryption"] == "aws:kms"
    assert first.headers["x-amz-server-side-encryption-aws-kms-key-id"] == "kk"
    assert first.headers["x-amz-storage-class"] == "STANDARD_IA"
    assert first.headers["x-amz-meta-task"] == "t"
    assert first.headers["content-length"] == "1"
    assert first.headers["x-amz-content-sha256"] == hashlib.sha256(b"v").hexdigest()
    signed = first.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"content-type", "x-amz-meta-task", "x-amz-server-side-encryption", "x-amz-storage-class"} <= set(signed)


def test_virtual_hosted_addressing_on_aws() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    make(handler, "s3result://AKID:S@my-bucket/p?region=eu-west-1").delete("p/k")
    assert str(seen[0].url) == "https://my-bucket.s3.eu-west-1.amazonaws.com/p/k"
    assert "/eu-west-1/s3/aws4_request" in seen[0].headers["authorization"]


@pytest.mark.parametrize(
    "status,code,cls",
    [
        (404, "NoSuchKey", NotFound),
        (412, "PreconditionFailed", PreconditionFailed),
        (403, "AccessDenied", AccessDenied),
        (400, "InvalidArgument", S3Error),
    ],
)
def test_client_errors_are_not_retried(status: int, code: str, cls: type[S3Error]) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, content=_xml(code))

    with pytest.raises(cls) as exc:
        make(handler).put("k", b"v")
    assert len(calls) == 1
    assert exc.value.code == code and exc.value.request_id == "RID" and exc.value.status == status


def test_412_on_create_is_already_exists() -> None:
    with pytest.raises(AlreadyExists):
        make(lambda r: httpx.Response(412, content=_xml("PreconditionFailed"))).put("k", b"v", mode=PutMode.CREATE)


def test_head_errors_are_classified_by_status_alone() -> None:
    with pytest.raises(NotFound) as exc:
        make(lambda r: httpx.Response(404)).head("k")
    assert exc.value.code == "NotFound"


def test_transient_errors_are_retried_and_signed_again() -> None:
    seen: list[httpx.Request] = []
    now = iter([1000.0, 2000.0, 3000.0])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, content=_xml("ServiceUnavailable"))
        if len(seen) == 2:
            return httpx.Response(500, content=_xml("InternalError"))
        return httpx.Response(200, headers={"ETag": '"x"'})

    client = make(handler, clock=lambda: next(now))
    client.put("k", b"v")
    assert len(seen) == 3 and client.retries == 2
    assert len({r.headers["x-amz-date"] for r in seen}) == 3
    assert len({r.headers["authorization"] for r in seen}) == 3


def test_gives_up_after_max_attempts() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, content=_xml("ServiceUnavailable"))

    with pytest.raises(ServerError):
        make(handler, attempts=4).get("k")
    assert len(calls) == 4


def test_connect_errors_are_retried_and_reported_in_one_line() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(ConnectError) as exc:
        make(handler).get("k")
    assert len(calls) == 3
    message = str(exc.value)
    assert "\n" not in message and "Connection refused" in message and "endpoint_url" in message
    assert SECRET not in message


def test_read_timeouts_are_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            raise httpx.ReadTimeout("timed out")
        return httpx.Response(200, content=b"")

    assert make(handler).get("k").body == b""
    assert len(calls) == 3


def test_body_not_matching_md5_etag_is_retried_then_reported() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        good = f'"{hashlib.md5(b"right").hexdigest()}"'
        return httpx.Response(200, content=b"wrong" if len(calls) == 1 else b"right", headers={"ETag": good})

    assert make(handler).get("k").body == b"right"
    assert len(calls) == 2
    with pytest.raises(CorruptResponse):
        make(lambda r: httpx.Response(200, content=b"x", headers={"ETag": '"' + "0" * 32 + '"'})).get("k")


def test_md5_check_skipped_for_multipart_and_kms_etags() -> None:
    assert make(lambda r: httpx.Response(200, content=b"x", headers={"ETag": '"abc-2"'})).get("k").body == b"x"
    kms = {"ETag": '"' + "0" * 32 + '"', "x-amz-server-side-encryption": "aws:kms"}
    assert make(lambda r: httpx.Response(200, content=b"x", headers=kms)).get("k").body == b"x"


def test_region_learnt_from_redirect_once(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "/eu-west-1/" in request.headers["authorization"]:
            return httpx.Response(200, content=b"")
        return httpx.Response(301, content=_xml("PermanentRedirect"), headers={"x-amz-bucket-region": "eu-west-1"})

    client = make(handler, "s3result://AKID:S@my-bucket?region=us-east-1")
    with caplog.at_level(logging.WARNING):
        client.get("k")
        client.get("k")
    assert len(seen) == 3 and client.region == "eu-west-1"
    assert seen[1].url.host == "my-bucket.s3.eu-west-1.amazonaws.com"
    assert sum("region" in r.getMessage() for r in caplog.records) == 1


def test_temporary_redirect_from_aws_is_followed_once_to_the_regional_endpoint() -> None:
    """S3's 307 for a bucket created recently in another region: the region is learnt from the
    Endpoint it names, and the retry goes to the endpoint this client builds for that region."""
    seen: list[httpx.Request] = []
    redirect = _xml("TemporaryRedirect", extra="<Endpoint>my-bucket.s3-eu-west-2.amazonaws.com</Endpoint>")

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "my-bucket.s3.eu-west-2.amazonaws.com":
            return httpx.Response(200, content=b"v")
        return httpx.Response(
            307, content=redirect, headers={"location": "https://my-bucket.s3-eu-west-2.amazonaws.com/k"}
        )

    client = make(handler, "s3result://AKID:S@my-bucket?region=us-east-1")
    assert client.get("k").body == b"v"
    assert [r.url.host for r in seen] == [
        "my-bucket.s3.us-east-1.amazonaws.com",
        "my-bucket.s3.eu-west-2.amazonaws.com",
    ]
    assert "/eu-west-2/" in seen[1].headers["authorization"] and client.region == "eu-west-2"


@pytest.mark.parametrize(
    "url",
    [
        "s3result+https://AKID:S@store.example/bkt?region=us-east-1",
        "s3result://AKID:S@my-bucket?region=us-east-1",  # AWS, but the redirect names no AWS region
    ],
)
def test_temporary_redirect_to_another_host_is_reported_never_followed(url: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(307, headers={"location": "https://evil.example/bkt/k"})

    with pytest.raises(S3Error) as exc:
        make(handler, url).get("k")
    assert len(seen) == 1 and exc.value.status == 307 and exc.value.code == "TemporaryRedirect"
    text = str(exc.value)
    assert "\n" not in text and "evil.example" in text and "set region=" in text and "endpoint_url" in text


def test_region_learnt_from_malformed_authorization() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/ap-south-1/" in request.headers["authorization"]:
            return httpx.Response(204)
        return httpx.Response(400, content=_xml("AuthorizationHeaderMalformed", extra="<Region>ap-south-1</Region>"))

    client = make(handler, "s3result+https://AKID:S@ceph.example/bkt?region=us-east-1")
    client.delete("k")
    assert client.region == "ap-south-1"


def test_clock_skew_corrected_from_date_header() -> None:
    server_time = 1_700_000_000.0
    dates: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        dates.append(request.headers["x-amz-date"])
        if request.headers["x-amz-date"].startswith("2023"):
            return httpx.Response(200, content=b"")
        return httpx.Response(
            403,
            content=_xml("RequestTimeTooSkewed"),
            headers={"Date": email.utils.formatdate(server_time, usegmt=True)},
        )

    client = make(handler, clock=lambda: server_time + 3600 * 24 * 400)
    client.get("k")
    assert len(dates) == 2 and client.clock_offset == pytest.approx(-3600 * 24 * 400)
    client.get("k")
    assert len(dates) == 3


def test_403_on_read_explains_list_bucket() -> None:
    with pytest.raises(AccessDenied) as exc:
        make(lambda r: httpx.Response(403, content=_xml("AccessDenied", "Access Denied"))).get("missing")
    assert "s3:ListBucket" in str(exc.value) and "\n" not in str(exc.value)


def test_html_answer_is_named() -> None:
    with pytest.raises(S3Error) as exc:
        make(
            lambda r: httpx.Response(
                502, content=b"<html><body>Bad gateway</body></html>", headers={"content-type": "text/html"}
            ),
            attempts=1,
        ).get("k")
    assert "HTML" in str(exc.value)


def test_keys_checked_before_sending() -> None:
    client = make(lambda r: pytest.fail("nothing may be sent"))
    with pytest.raises(InvalidKey):
        client.get("é" * 600)
    with pytest.raises(InvalidKey):
        client.get("")


def test_delete_of_missing_key_is_fine_but_missing_bucket_is_not() -> None:
    make(lambda r: httpx.Response(404, content=_xml("NoSuchKey"))).delete("k")
    with pytest.raises(NotFound):
        make(lambda r: httpx.Response(404, content=_xml("NoSuchBucket"))).delete("k")


def test_new_pool_after_fork() -> None:
    made: list[int] = []

    def factory(base: str) -> HttpxTransport:
        made.append(1)
        return HttpxTransport(httpx.MockTransport(lambda r: httpx.Response(200, content=b"")), base)

    client = S3Client(config.build(url="s3result+http://A:S@127.0.0.1:9/bkt").s3, transport_factory=factory)
    client.get("k")
    client.get("k")
    assert len(made) == 1
    with mock.patch("os.getpid", return_value=-42):
        client.get("k")
        assert len(made) == 2
        client.get("k")
    assert len(made) == 2 or len(made) == 3


def test_get_many_runs_concurrently_and_keeps_order() -> None:
    import threading

    threads: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        threads.add(threading.current_thread().name)
        key = request.url.path.rsplit("/", 1)[1]
        return (
            httpx.Response(404, content=_xml("NoSuchKey"))
            if key.startswith("missing")
            else httpx.Response(200, content=key.encode())
        )

    got = make(handler).get_many([f"k{i}" if i % 3 else f"missing{i}" for i in range(30)])
    assert [g.body if g else None for g in got] == [f"k{i}".encode() if i % 3 else None for i in range(30)]
    assert any(name.startswith("s3result") for name in threads)


def test_retry_quota_stops_retries_against_a_dead_store() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, content=_xml("ServiceUnavailable"))

    client = S3Client(
        config.build(url="s3result+http://A:S@127.0.0.1:9/bkt").s3,
        transport_factory=lambda base: HttpxTransport(httpx.MockTransport(handler), base),
        retry=RetryConfig(max_attempts=3, base_delay=0.0, quota_capacity=10, retry_cost=5),
        sleep=lambda s: None,
    )
    for _ in range(5):
        with pytest.raises(ServerError):
            client.get("k")
    # 10 tokens pay for two retries; after that every call is a single attempt.
    assert len(calls) == 5 + 2


def test_repr_has_no_secret() -> None:
    client = make(lambda r: httpx.Response(200))
    assert SECRET not in repr(client)


def test_timeouts_map_to_request_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.WriteTimeout("slow")

    with pytest.raises(RequestTimeout):
        make(handler, attempts=1).put("k", b"v")


def test_html_page_with_200_is_not_taken_for_a_result() -> None:
    page = httpx.Response(
        200, content=b"<html><body>Sign in</body></html>", headers={"content-type": "text/html; charset=utf-8"}
    )
    with pytest.raises(S3Error) as exc:
        make(lambda r: page).get("k")
    assert "HTML" in str(exc.value) and "endpoint" in str(exc.value)


def test_region_switch_closes_the_old_pool_and_takes_the_lock() -> None:
    """The region switch replaces this process's pool (closing the old one) under the lock."""
    import threading

    made: list[tuple[str, mock.Mock]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "/eu-west-1/" in request.headers["authorization"]:
            return httpx.Response(200, content=b"")
        return httpx.Response(301, content=_xml("PermanentRedirect"), headers={"x-amz-bucket-region": "eu-west-1"})

    def factory(base: str) -> HttpxTransport:
        transport = HttpxTransport(httpx.MockTransport(handler), base)
        spy = mock.Mock(wraps=transport)
        made.append((base, spy))
        return spy  # type: ignore[no-any-return]

    client = S3Client(
        config.build(url="s3result://AKID:S@my-bucket?region=us-east-1", environ={}).s3,
        transport_factory=factory,
        retry=RetryConfig(max_attempts=3, base_delay=0.0),
        sleep=lambda s: None,
    )
    client.get("k")
    assert [b for b, _ in made] == ["https://my-bucket.s3.us-east-1.amazonaws.com"] + [
        "https://my-bucket.s3.eu-west-1.amazonaws.com"
    ]
    assert made[0][1].close.call_count == 1 and made[1][1].close.call_count == 0
    client.get("k")
    assert len(made) == 2

    # Another thread holding the lock delays the switch until it lets go.
    switched = threading.Event()
    with client._lock:
        t = threading.Thread(target=lambda: (client._set_region("ap-south-1"), switched.set()))
        t.start()
        assert not switched.wait(0.3) and client.region == "eu-west-1"
    t.join(5)
    assert switched.is_set() and client.region == "ap-south-1" and made[1][1].close.call_count == 1


def test_lone_surrogate_is_an_invalid_key() -> None:
    client = make(lambda r: httpx.Response(200))
    for key in ("\ud800", "task-\udfff", "a\udc80b"):
        with pytest.raises(InvalidKey, match="UTF-8"):
            client.get(key)
        with pytest.raises(InvalidKey):
            client.put(key, b"x")


def test_an_answer_after_retries_refunds_the_quota() -> None:
    """A 503 then a 404 ("not yet"): the store answered, so the retry's tokens come back.

    Pending reads are 404s; kept, those tokens would drain the quota over a flaky network
    (tests/integration/test_retry_quota.py), and a 503 that persists is still not refunded.
    """
    answers = iter([503, 404] * 50)

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return httpx.Response(status, content=_xml("ServiceUnavailable" if status == 503 else "NoSuchKey"))

    client = S3Client(
        config.build(url="s3result+http://A:S@127.0.0.1:9/bkt").s3,
        transport_factory=lambda base: HttpxTransport(httpx.MockTransport(handler), base),
        retry=RetryConfig(max_attempts=3, base_delay=0.0, quota_capacity=10, retry_cost=5),
        sleep=lambda s: None,
    )
    for _ in range(50):
        assert client.get_or_none("k") is None
    assert client._quota.acquire(ServerError(status=503)) == 5 and client._quota.acquire(ServerError(status=503)) == 5
    assert client.retries == 50


def test_a_pending_poll_is_an_answer_no_error_is_built() -> None:
    """404 NoSuchKey to get_or_none is None straight from classification: no S3Error made or caught."""
    client = make(lambda r: httpx.Response(404, content=_xml("NoSuchKey")))
    with mock.patch("s3result.s3.client.map_error", side_effect=AssertionError("an error was built")):
        assert client.get_or_none("k") is None
        client.delete("k")
    with pytest.raises(NotFound):  # the same answer to a plain get is NotFound
        client.get("k")
    with pytest.raises(NotFound, match="NoSuchBucket"):
        make(lambda r: httpx.Response(404, content=_xml("NoSuchBucket"))).get_or_none("k")


def test_put_modes_send_one_condition_each() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"ETag": '"e"'})

    client = make(handler)
    client.put("k", b"v")
    client.put("k", b"v", mode=PutMode.CREATE)
    client.put("k", b"v", mode=PutMode.update('"e1"'))
    conditions = [(r.headers.get("if-none-match"), r.headers.get("if-match")) for r in seen]
    assert conditions == [(None, None), ("*", None), (None, '"e1"')]
    assert repr(PutMode.update('"e1"')) == "PutMode.update('\"e1\"')" and repr(PutMode.CREATE) == "PutMode.CREATE"
    assert PutMode.update("x") == PutMode.update("x") and PutMode.OVERWRITE.header is None
