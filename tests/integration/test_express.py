"""S3 Express One Zone through the testing kit's directory-bucket front (s3result/testing/express.py).

The front answers CreateSession, checks the session token and the s3express signature of
every object request with botocore, and stores in moto. Unit tests: tests/test_express.py.
End to end with a worker: tests/e2e/test_express.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from s3result.errors import AccessDenied, S3Error
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.s3.request import PutMode
from s3result.testing.express import DirectoryBucketFront
from s3result.testing.store import MotoServer


@pytest.fixture
def front(moto_server: MotoServer) -> Iterator[DirectoryBucketFront]:
    with DirectoryBucketFront(moto_server) as f:
        yield f


_opened: list[S3Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def _client(url: str) -> S3Client:
    client = S3Client(config.build(url=url, environ={}).s3)
    _opened.append(client)
    return client


def test_round_trip_through_sessions(front: DirectoryBucketFront) -> None:
    client = _client(front.url("it"))
    assert client.config.express and client.config.path_style  # an IP endpoint: path-style, as botocore
    etag = client.put("it/k", b"value", mode=PutMode.CREATE)
    assert client.get("it/k").body == b"value"
    assert client.head("it/k").size == 5
    client.put("it/k", b"value 2", mode=PutMode.update(etag))  # the opaque ETag maps back to moto's
    assert client.get("it/k").body == b"value 2"
    client.delete("it/k")
    assert client.get_or_none("it/k") is None
    # One session for all of it; every object request verified by the front.
    assert front.stats["sessions"] == 1
    assert front.stats["verified"] == 7 and not [k for k in front.stats if k.startswith("rejected")]


def test_the_front_really_checks(front: DirectoryBucketFront, moto_server: MotoServer) -> None:
    """A wrong secret, a plain S3 signature and a forged session are all refused."""
    wrong = front.url("it").replace(moto_server.secret_key, "not-the-secret")
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        _client(wrong).get_or_none("it/k")
    client = _client(front.url("it"))
    client.get_or_none("it/k")
    plain = _client(front.url("it"))
    plain.session = None  # signs as for an ordinary bucket: service s3, no session token
    with pytest.raises(S3Error, match="s3express|session"):
        plain.get("it/k")
    assert client.session is not None
    good = client.session.get()
    forged = _client(front.url("it"))
    assert forged.session is not None
    forged.session._current = type(good)(good.access_key, "forged-secret", good.token, expiry=good.expiry)  # type: ignore[misc]
    forged.session._provider = lambda: None  # type: ignore[assignment]
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        forged.get("it/k")
    assert front.stats["rejected SignatureDoesNotMatch"] == 3


def test_sessions_are_renewed_across_their_expiry_with_no_failed_request(moto_server: MotoServer) -> None:
    """Sessions of 4 s, four threads reading and writing for 9 s: not one request refused."""
    with DirectoryBucketFront(moto_server, session_ttl=4.0) as front:
        client = _client(front.url("renew"))
        errors: list[BaseException] = []
        done = threading.Event()

        def work(n: int) -> None:
            i = 0
            while not done.is_set():
                try:
                    client.put(f"renew/{n}-{i}", str(i).encode())
                    assert client.get(f"renew/{n}-{i}").body == str(i).encode()
                except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                    errors.append(exc)
                i += 1

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(9)
        done.set()
        for t in threads:
            t.join(30)
        assert errors == []
        assert front.stats["sessions"] >= 3  # renewed ahead of each expiry
        assert front.stats["verified"] > 20
        assert not [k for k in front.stats if k.startswith("rejected")], front.stats
        assert client.retries == 0


def test_a_session_refused_once_is_recovered(front: DirectoryBucketFront) -> None:
    client = _client(front.url("refused"))
    client.put("refused/k", b"v")
    front.refuse(1)
    assert client.get("refused/k").body == b"v"
    assert front.stats["refused"] == 1 and front.stats["sessions"] == 2
    front.expire_sessions()  # every session ended early (revoked): renewed the same way
    client.put("refused/k", b"w")
    assert front.stats["sessions"] == 3 and client.get("refused/k").body == b"w"


def test_a_read_only_session_cannot_write(front: DirectoryBucketFront) -> None:
    client = _client(front.url("ro", session_mode="ReadOnly"))
    with pytest.raises(AccessDenied):
        client.put("ro/k", b"v")
    assert client.get_or_none("ro/k") is None


def test_check_reports_the_session_layer(front: DirectoryBucketFront, moto_server: MotoServer) -> None:
    from s3result.cli.check import findings_for

    resolved, findings = findings_for(config.build(url=front.url("check"), environ={}))
    by_name = {f.name: f for f in findings}
    assert resolved["addressing"] == "path-style"
    session = by_name["session"]
    assert session.ok and "CreateSession on results--usw2-az1--x-s3" in session.detail and "300s" in session.detail
    assert all(by_name[n].ok for n in ("PUT", "GET", "HEAD", "DELETE", "conditional writes")), findings
    assert by_name["expiry"].warning and "s3express-control" in by_name["expiry"].detail
    # A secret the store refuses: the session finding says so, and nothing is probed after it.
    wrong = front.url("check").replace(moto_server.secret_key, "not-the-secret")
    _, findings = findings_for(config.build(url=wrong, environ={}))
    last = findings[-1]
    assert last.name == "session" and not last.ok and "SignatureDoesNotMatch" in last.detail
    assert "secret access key" in last.fix


def test_a_forked_child_keeps_the_session_on_its_own_connections(front: DirectoryBucketFront) -> None:
    from tests.test_express import _in_child

    client = _client(front.url("fork"))
    client.put("fork/k", b"parent")
    parent_slot = client.pool.slot

    def child() -> None:
        assert client.get("fork/k").body == b"parent"
        assert client.pool.slot is not parent_slot  # its own pool: the parent's sockets are never written to
        client.put("fork/k", b"child")

    assert _in_child(child) == 0
    assert client.get("fork/k").body == b"child"  # the parent's pool still works
    assert front.stats["sessions"] == 1  # the child signed with the session it inherited
