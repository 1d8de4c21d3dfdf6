"""S3 Express One Zone (express.py): endpoints, CreateSession and session signing, against botocore.

botocore is the oracle: its S3 endpoint ruleset for the zonal endpoints, ``S3SigV4Auth`` under
``s3express`` for CreateSession and ``S3ExpressAuth`` for object requests. The requests checked
are the ones S3Client really sends (captured by a mock transport), re-signed by botocore.
Integration and end to end: tests/integration/test_express.py (the testing kit's front).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3result.errors import AccessDenied, ConfigError, CredentialsError
from s3result.results import config
from s3result.s3 import config as s3config
from s3result.s3 import express
from s3result.s3.client import S3Client
from s3result.s3.request import PutMode
from s3result.s3.retry import RetryConfig
from s3result.s3.transport import HttpxTransport

REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2", "cn-north-1"]


@pytest.fixture(scope="module")
def rules() -> Any:
    from botocore.endpoint_provider import EndpointProvider
    from botocore.loaders import create_loader

    loader = create_loader()
    return EndpointProvider(loader.load_service_model("s3", "endpoint-rule-set-1"), loader.load_data("partitions"))


def _botocore_endpoint(rules: Any, bucket: str, region: str) -> str | None:
    try:
        endpoint = rules.resolve_endpoint(Region=region, Bucket=bucket, UseFIPS=False, UseDualStack=False)
    except Exception:  # noqa: BLE001 - botocore's "not a directory bucket name" is an exception
        return None
    assert endpoint.properties["backend"] == "S3Express"
    assert endpoint.properties["authSchemes"][0]["signingName"] == "s3express"
    return str(endpoint.url)


_label = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-"), min_size=1, max_size=12)
_zones = st.one_of(
    st.from_regex(r"[a-z]{3}[0-9]-az[0-9]{1,2}", fullmatch=True),  # usw2-az1, use1-az12
    st.from_regex(r"[a-z]{3}[0-9]-[a-z]{3}[0-9]-az[0-9]{1,2}", fullmatch=True),  # Local Zones
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-"), min_size=1, max_size=22),  # anything
)


@settings(max_examples=400, deadline=None)
@given(
    base=st.lists(_label, min_size=1, max_size=3).map("--".join),
    zone=_zones,
    region=st.sampled_from(REGIONS),
)
def test_zonal_endpoint_matches_botocore(rules: Any, base: str, zone: str, region: str) -> None:
    bucket = f"{base}--{zone}--x-s3"
    theirs = _botocore_endpoint(rules, bucket, region)
    ours = s3config.zonal_endpoint(bucket, region) if s3config.zone_id(bucket) is not None else None
    assert ours == theirs


@pytest.mark.parametrize(
    ("bucket", "region", "url"),
    [
        (
            "results--usw2-az1--x-s3",
            "us-west-2",
            "https://results--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com",
        ),
        (
            "a--b--use1-az4--x-s3",
            "us-east-1",
            "https://a--b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com",
        ),
        ("r--cnn1-az1--x-s3", "cn-north-1", "https://r--cnn1-az1--x-s3.s3express-cnn1-az1.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_a_directory_bucket_in_the_url_just_works(rules: Any, bucket: str, region: str, url: str) -> None:
    s = config.build(url=f"s3result://{bucket}/celery?region={region}", environ={})
    assert s.express and not s.path_style and s.base_url == url == _botocore_endpoint(rules, bucket, region)


def test_an_endpoint_override_is_addressed_as_botocore_does(rules: Any) -> None:
    bucket = "results--usw2-az1--x-s3"
    for endpoint in ("http://127.0.0.1:9000", "http://store.test:9000"):
        s = config.build(url=f"s3result+{endpoint}/{bucket}/celery?region=us-west-2", environ={})
        theirs = rules.resolve_endpoint(Region="us-west-2", Bucket=bucket, Endpoint=endpoint).url
        client = S3Client(s.s3)
        ours = client.base_url + (client._bucket_path if client._bucket_path != "/" else "")
        assert ours == theirs


@pytest.mark.parametrize(
    ("url", "setting"),
    [
        ("s3result://results--usw2--x-s3?region=us-west-2", "bucket"),  # no zone id of a known length
        ("s3result://results--usw2-az1--x-s3?region=us-west-2&addressing=path", "addressing"),
        ("s3result://results--usw2-az1--x-s3?region=us-west-2&session_mode=admin", "session_mode"),
    ],
)
def test_bad_directory_bucket_settings_name_the_setting(url: str, setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.build(url=url, environ={})
    assert info.value.setting == setting and "\n" not in str(info.value)


# -- a client against a mock zonal endpoint ----------------------------------------------------


def _session_xml(access: str, secret: str, token: str, expiry: float) -> bytes:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))
    return (
        "<?xml version='1.0' encoding='UTF-8'?><CreateSessionResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>"
        f"<Credentials><SessionToken>{token}</SessionToken><SecretAccessKey>{secret}</SecretAccessKey>"
        f"<AccessKeyId>{access}</AccessKeyId><Expiration>{stamp}</Expiration></Credentials></CreateSessionResult>"
    ).encode()


class Zone:
    """A mock zonal endpoint: sessions numbered 1, 2, ...; canned object answers."""

    def __init__(self, clock: Callable[[], float], *, ttl: float = 300.0) -> None:
        self.clock = clock
        self.ttl = ttl
        self.requests: list[httpx.Request] = []
        self.sessions = 0
        self.object_answers: list[httpx.Response] = []
        self.session_answers: list[httpx.Response] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            if request.url.query == b"session":
                if self.session_answers:
                    return self.session_answers.pop(0)
                self.sessions += 1
                n = self.sessions
                body = _session_xml(f"ASIASESSION{n}", f"session/secret+{n}", f"token-{n}", self.clock() + self.ttl)
                return httpx.Response(200, content=body)
            if self.object_answers:
                return self.object_answers.pop(0)
            return httpx.Response(200, content=b"v", headers={"ETag": '"opaque"'})

    @property
    def object_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.query != b"session"]


def _client(zone: Zone, url: str, clock: Callable[[], float]) -> S3Client:
    return S3Client(
        config.build(url=url, environ={}).s3,
        transport_factory=lambda base: HttpxTransport(httpx.MockTransport(zone), base),
        retry=RetryConfig(max_attempts=3, base_delay=0.0),
        sleep=lambda s: None,
        clock=clock,
    )


def _botocore_authorization(
    request: httpx.Request, creds: tuple[str, str, str | None], region: str, when: float
) -> str:
    """What botocore signs for this request: S3ExpressAuth with a session token, else S3SigV4Auth."""
    from botocore.auth import S3ExpressAuth, S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    names = {"host", "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-s3session-token"}
    names |= {"x-amz-security-token", "content-length", "accept-encoding"}
    headers = {k: v for k, v in request.headers.items() if k not in names}
    query = request.url.query.decode()
    url = f"http://{request.headers['host']}{request.url.raw_path.decode().split('?')[0]}"
    aws = AWSRequest(
        method=request.method, url=url + (f"?{query}" if query else ""), headers=headers, data=request.content
    )
    stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=stamp):
        if query == "session":
            S3SigV4Auth(Credentials(*creds), "s3express", region).add_auth(aws)
        else:
            S3ExpressAuth(Credentials(*creds), "s3express", region, identity_cache=None).add_auth(aws)
            assert aws.headers["x-amz-s3session-token"] == request.headers["x-amz-s3session-token"]
            assert "X-Amz-Security-Token" not in aws.headers
    return str(aws.headers["Authorization"])


_meta = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(
    zone_bucket=st.sampled_from(["results--usw2-az1--x-s3", "a--b--use1-az4--x-s3", "x--apne1-az4--x-s3"]),
    region=st.sampled_from(REGIONS),
    # No "." or ".." segment: the mock transport (httpx) normalises them away after signing, the
    # real one does not (tests/test_sigv4.py and the conformance suite cover such keys).
    key=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
        lambda k: not {".", ".."} & set(("p/" + k).split("/"))
    ),
    body=st.binary(max_size=200),
    meta=_meta,
    token=st.one_of(st.none(), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)),
    mode=st.sampled_from([None, "ReadWrite", "ReadOnly"]),
    when=st.integers(978307200, 4102444800),
    conditional=st.sampled_from([None, "if_none_match", "if_match"]),
)
def test_create_session_and_object_requests_are_signed_as_botocore_signs_them(
    zone_bucket: str,
    region: str,
    key: str,
    body: bytes,
    meta: dict[str, str],
    token: str | None,
    mode: str | None,
    when: int,
    conditional: str | None,
) -> None:
    clock = lambda: float(when)  # noqa: E731
    zone = Zone(clock)
    token_part = f"&session_token={quote(token, safe='')}" if token else ""
    mode_part = f"&session_mode={mode}" if mode else ""
    url = f"s3result://AKIDBASE:{quote('base/secret+key', safe='')}@{zone_bucket}/p?region={region}{token_part}{mode_part}"
    client = _client(zone, url, clock)
    client.put(
        key,
        body,
        metadata=meta,
        mode={"if_none_match": PutMode.CREATE, "if_match": PutMode.update('"e"')}.get(conditional, PutMode.OVERWRITE),
    )
    client.get(key)
    client.head(key)
    client.delete(key)
    assert [r.method for r in zone.requests] == ["GET", "PUT", "GET", "HEAD", "DELETE"]
    create, *objects = zone.requests
    assert create.url.query == b"session" and create.url.path == "/"
    assert create.headers.get("x-amz-create-session-mode") == mode
    assert create.headers.get("x-amz-security-token") == token and "x-amz-s3session-token" not in create.headers
    assert (
        _botocore_authorization(create, ("AKIDBASE", "base/secret+key", token), region, when)
        == create.headers["authorization"]
    )
    for request in objects:
        assert request.headers["x-amz-s3session-token"] == "token-1" and "x-amz-security-token" not in request.headers
        theirs = _botocore_authorization(request, ("ASIASESSION1", "session/secret+1", "token-1"), region, when)
        assert theirs == request.headers["authorization"]


# -- the session cache -------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


URL = "s3result://AKID:SECRET@results--usw2-az1--x-s3/p?region=us-west-2"


def _tokens(zone: Zone) -> list[str]:
    return [r.headers["x-amz-s3session-token"] for r in zone.object_requests]


def test_one_session_per_bucket_reused_until_the_refresh_window() -> None:
    clock = Clock()
    zone = Zone(clock)
    client = _client(zone, URL, clock)
    for _ in range(5):
        client.get("k")
        clock.now += 50  # 250 s in: 50 s left, outside the 45 s advisory window
    assert zone.sessions == 1
    clock.now += 10  # 40 s left: one refresh, in the calling thread (no other is waiting)
    client.get("k")
    assert zone.sessions == 2 and _tokens(zone)[-1] == "token-2"
    assert len(zone.object_requests) == 6  # a refresh is never an extra object request


def test_other_threads_keep_signing_while_one_refreshes() -> None:
    clock = Clock()
    zone = Zone(clock)
    client = _client(zone, URL, clock)
    client.get("k")
    clock.now += 270  # 30 s left: advisory window
    started, release = threading.Event(), threading.Event()
    real = zone.__call__

    def slow(request: httpx.Request) -> httpx.Response:
        if request.url.query == b"session":
            started.set()
            release.wait(10)
        return real(request)

    client.pool.slot = None
    client.pool.factory = lambda base: HttpxTransport(httpx.MockTransport(slow), base)
    refresher = threading.Thread(target=client.get, args=("k",))
    refresher.start()
    assert started.wait(10)
    client.get("k")  # not blocked by the refresh in flight: signs with session 1
    assert _tokens(zone)[-1] == "token-1"
    release.set()
    refresher.join(10)
    assert zone.sessions == 2
    client.get("k")
    assert _tokens(zone)[-1] == "token-2"


def test_an_expired_session_waits_for_one_refresh() -> None:
    clock = Clock()
    zone = Zone(clock)
    client = _client(zone, URL, clock)
    client.get("k")
    clock.now += 400  # expired: every caller waits for the one CreateSession
    threads = [threading.Thread(target=client.get, args=("k",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert zone.sessions == 2 and set(_tokens(zone)[1:]) == {"token-2"}


def test_a_session_refused_mid_flight_is_renewed_once_and_the_request_sent_again() -> None:
    clock = Clock()
    zone = Zone(clock)
    client = _client(zone, URL, clock)
    client.get("k")
    refused = b"<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>"
    zone.object_answers.append(httpx.Response(400, content=refused))
    assert client.get("k").body == b"v"
    assert zone.sessions == 2 and _tokens(zone) == ["token-1", "token-1", "token-2"]
    # Refused again with the new one: raised, not a loop.
    zone.object_answers += [httpx.Response(400, content=refused)] * 2
    with pytest.raises(Exception, match="ExpiredToken"):
        client.get("k")
    assert zone.sessions == 3


def test_create_session_refused_names_the_permission() -> None:
    clock = Clock()
    zone = Zone(clock)
    denied = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    zone.session_answers.append(httpx.Response(403, content=denied))
    client = _client(zone, URL, clock)
    with pytest.raises(AccessDenied, match=r"\?session"):
        client.get("k")
    assert zone.object_requests == []


def test_create_session_is_retried_when_transient() -> None:
    clock = Clock()
    zone = Zone(clock)
    zone.session_answers.append(httpx.Response(503, content=b"<Error><Code>SlowDown</Code></Error>"))
    client = _client(zone, URL, clock)
    assert client.get("k").body == b"v"
    assert zone.sessions == 1


def test_a_create_session_answer_that_does_not_parse_is_asked_again() -> None:
    clock = Clock()
    zone = Zone(clock)
    zone.session_answers.append(httpx.Response(200, content=b"<CreateSessionResult><Credentials><Sessi"))
    client = _client(zone, URL, clock)
    assert client.get("k").body == b"v"
    assert zone.sessions == 1 and len(zone.requests) == 3
    zone.session_answers += [httpx.Response(200, content=b"garbage")] * 3
    clock.now += 400
    with pytest.raises(CredentialsError, match="without"):
        client.get("k")


def test_parse_session_refuses_an_incomplete_answer() -> None:
    with pytest.raises(CredentialsError, match="SessionToken"):
        express.parse_session(b"<Credentials><AccessKeyId>A</AccessKeyId></Credentials>")
    with pytest.raises(CredentialsError, match="Expiration"):
        express.parse_session(_session_xml("A", "S", "T", 0).replace(b"1970-01-01T00:00:00Z", b"soon"))
    access, secret, token, expiry = express.parse_session(_session_xml("A", "S&amp;", "T", 1_800_000_000))
    assert (access, secret, token, expiry) == ("A", "S&", "T", 1_800_000_000)


def test_no_session_secret_in_a_repr_or_log(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    clock = Clock()
    zone = Zone(clock)
    client = _client(zone, URL, clock)
    with caplog.at_level(logging.DEBUG):
        client.get("k")
        clock.now += 400
        client.get("k")
    assert client.session is not None
    text = caplog.text + repr(client) + repr(client.session) + repr(client.session.get())
    for secret in ("session/secret+1", "session/secret+2", "token-1", "token-2", "ASIASESSION"):
        assert secret not in text


def test_a_forked_child_renews_the_session_over_its_own_connections() -> None:
    """After a fork the child keeps the session (just credentials); a refresh uses its own pool."""
    clock = Clock()
    zone = Zone(clock)
    client = _client(zone, URL, clock)
    client.get("k")
    parent_slot = client.pool.slot
    with mock.patch("os.getpid", return_value=-1):
        client.get("k")
        assert client.pool.slot is not parent_slot  # a new pool, never the parent's sockets
        assert zone.sessions == 1  # the inherited session still signs
        clock.now += 400
        client.get("k")
        assert zone.sessions == 2


def test_directory_bucket_etags_are_never_taken_for_md5s() -> None:
    """S3 Express ETags look like MD5s (32 hex digits) and are not: only the CRC is checked there."""
    from s3result.s3.integrity import CHECKSUM_HEADER, checksum

    clock = Clock()
    zone = Zone(clock)
    client = _client(zone, URL, clock)
    zone.object_answers.append(httpx.Response(200, content=b"v", headers={"ETag": '"' + "ab" * 16 + '"'}))
    assert client.get("k").body == b"v"  # no checksum (written by another tool): nothing to check
    wrong = {"ETag": '"' + "ab" * 16 + '"', CHECKSUM_HEADER: checksum(b"w")}
    zone.object_answers += [httpx.Response(200, content=b"v", headers=wrong)] * 2
    with pytest.raises(Exception, match="CRC32"):
        client.get("k")


def _in_child(fn: Callable[[], None], timeout: float = 20.0) -> int:
    """Run ``fn`` in a forked child; its exit status (1 on an exception, -9 if it hung)."""
    import os
    import signal

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected from os._exit
        code = 0
        try:
            fn()
        except BaseException:  # noqa: BLE001 - any failure is the child's status
            import traceback

            traceback.print_exc()
            code = 1
        os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9


def test_a_fork_while_another_thread_renews_the_session_does_not_hang_the_child() -> None:
    """The parent's refresh lock is copied held into the child; the child gets a free one."""
    clock = Clock()
    zone = Zone(clock)
    client = _client(zone, URL, clock)
    client.get("k")
    assert client.session is not None
    held = client.session._refresh_lock
    held.acquire()  # a refresh in flight in another thread of the parent
    try:

        def child() -> None:
            clock.now += 400  # the session ended: the child must renew it itself
            assert client.get("k").body == b"v"
            assert zone.sessions == 2 and _tokens(zone)[-1] == "token-2"

        assert _in_child(child) == 0
    finally:
        held.release()
    assert zone.sessions == 1  # the child's session is its own (the parent's memory is untouched)


def test_small_edges() -> None:
    with pytest.raises(ValueError, match="not a directory bucket"):
        s3config.zonal_endpoint("results--x-s3", "us-west-2")
    assert not s3config.is_directory_bucket("results") and s3config.zone_id("results") is None
    assert s3config.zone_id("1.2.3.4--usw2-az1--x-s3") is None  # not a DNS label
    naive = _session_xml("A", "S", "T", 1_800_000_000).replace(b"Z</Expiration>", b"</Expiration>")
    assert express.parse_session(naive)[3] == 1_800_000_000  # no zone: UTC, as S3 means it
    provider = express.SessionProvider(lambda: b"", bucket="b--usw2-az1--x-s3", retry=RetryConfig(max_attempts=1))
    assert repr(provider) == "SessionProvider(bucket='b--usw2-az1--x-s3', sessions=0)"
    assert express.refresh_windows(300.0) == (45.0, 10.0)  # botocore's, for S3's 5-minute sessions
    assert express.refresh_windows(3.0) == (1.0, 0.5)  # a short test session keeps room for a request


def test_a_skewed_clock_is_corrected_from_the_create_session_answer() -> None:
    """CreateSession is a directory bucket's first request: a clock an hour off is learnt from it."""
    from email.utils import formatdate

    clock = Clock()
    zone = Zone(lambda: clock.now + 3600)  # the store's time
    skewed = b"<Error><Code>RequestTimeTooSkewed</Code><Message>too skewed</Message></Error>"
    zone.session_answers.append(
        httpx.Response(403, content=skewed, headers={"Date": formatdate(clock.now + 3600, usegmt=True)})
    )
    client = _client(zone, URL, clock)
    assert client.get("k").body == b"v"
    assert abs(client.clock_offset - 3600) < 2 and zone.sessions == 1
    assert [r.url.query for r in zone.requests] == [b"session", b"session", b""]
