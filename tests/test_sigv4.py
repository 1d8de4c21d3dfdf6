"""The signer, step by step, against AWS's vectors, S3's documented examples and botocore.

Integration: tests/integration/test_moto.py signs real requests that moto server verifies;
a wrong secret there must surface as SignatureDoesNotMatch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from unittest import mock
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3result.s3 import sigv4

SUITE = Path(__file__).parent / "data" / "aws-sigv4-testsuite"
ACCESS = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def _cases() -> list[Path]:
    # S3 never normalises paths, so the normalize-path vectors do not apply to it.
    return sorted(p for p in SUITE.rglob("*.req") if "normalize-path" not in p.parts)


def _parse_req(text: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    # The request line is 'METHOD /path HTTP/1.1'; the path may itself hold spaces.
    method = lines[0].split(" ", 1)[0]
    target = lines[0][len(method) + 1 : lines[0].rfind(" HTTP/")]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, target, headers, body.encode()


def _creq_for(req: Path) -> tuple[str, str, str]:
    method, target, headers, body = _parse_req(req.read_text())
    path, _, query = target.partition("?")
    expected = req.with_suffix(".creq").read_text()
    names = {n.lower() for n, _ in headers}
    # The session-token vector adds the token header at signing time; take it from the creq.
    for line in expected.split("\n"):
        if (
            line.startswith("x-amz-security-token:")
            and "x-amz-security-token" not in names
            and "before" not in req.name
        ):
            headers.append(("X-Amz-Security-Token", line.split(":", 1)[1]))
    if "post-sts-header-after" in req.name:
        headers = [(n, v) for n, v in headers if n.lower() != "x-amz-security-token"]
    params = []
    if query:
        for pair in query.split("&"):
            k, _, v = pair.partition("=")
            params.append((unquote(k), unquote(v)))
    block, signed = sigv4.canonical_headers(headers)
    creq = sigv4.canonical_request(
        method=method,
        uri=sigv4.canonical_uri(unquote(path)),
        query=sigv4.canonical_query(params),
        headers=block,
        signed_headers=signed,
        payload_hash=hashlib.sha256(body).hexdigest(),
    )
    return creq, signed, dict((n.lower(), v) for n, v in headers)["x-amz-date"]


@pytest.mark.parametrize("req", _cases(), ids=lambda p: p.stem)
def test_vector_canonical_request(req: Path) -> None:
    creq, _, _ = _creq_for(req)
    assert creq == req.with_suffix(".creq").read_text()


@pytest.mark.parametrize("req", _cases(), ids=lambda p: p.stem)
def test_vector_string_to_sign(req: Path) -> None:
    creq, _, amz_date = _creq_for(req)
    scope = sigv4.credential_scope(date=amz_date[:8], region="us-east-1", service="service")
    sts = sigv4.string_to_sign(amz_date=amz_date, scope=scope, canonical_request=creq)
    assert sts == req.with_suffix(".sts").read_text()


@pytest.mark.parametrize("req", _cases(), ids=lambda p: p.stem)
def test_vector_authorization(req: Path) -> None:
    creq, signed, amz_date = _creq_for(req)
    scope = sigv4.credential_scope(date=amz_date[:8], region="us-east-1", service="service")
    sts = sigv4.string_to_sign(amz_date=amz_date, scope=scope, canonical_request=creq)
    key = sigv4.signing_key(secret_key=SECRET, date=amz_date[:8], region="us-east-1", service="service")
    sig = sigv4.signature(key=key, string_to_sign=sts)
    authz = sigv4.authorization_value(access_key=ACCESS, scope=scope, signed_headers=signed, signature=sig)
    assert authz == req.with_suffix(".authz").read_text()


def test_suite_found_enough_vectors() -> None:
    assert len(_cases()) >= 20


# The four worked examples of https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
DOC_KEY, DOC_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_TIME = dt.datetime(2013, 5, 24, tzinfo=dt.timezone.utc).timestamp()
DOC_HOST = "examplebucket.s3.amazonaws.com"


def _doc_sign(method: str, path: str, query: list[tuple[str, str]], headers: list[tuple[str, str]], body: bytes) -> str:
    signed = sigv4.sign_s3(
        method=method,
        host=DOC_HOST,
        path=sigv4.canonical_uri(path),
        query=query,
        headers=headers,
        body_sha256=sigv4.payload_hash(body),
        access_key=DOC_KEY,
        secret_key=DOC_SECRET,
        region="us-east-1",
        now=DOC_TIME,
    )
    return dict(signed)["Authorization"]


def test_doc_get_object_with_range() -> None:
    # sign_s3 signs only host/x-amz-*/content-*; the example also signs Range, so use the steps.
    block, signed = sigv4.canonical_headers(
        [
            ("host", DOC_HOST),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", sigv4.EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]
    )
    creq = sigv4.canonical_request(
        method="GET", uri="/test.txt", query="", headers=block, signed_headers=signed, payload_hash=sigv4.EMPTY_SHA256
    )
    scope = sigv4.credential_scope(date="20130524", region="us-east-1", service="s3")
    sts = sigv4.string_to_sign(amz_date="20130524T000000Z", scope=scope, canonical_request=creq)
    key = sigv4.signing_key(secret_key=DOC_SECRET, date="20130524", region="us-east-1", service="s3")
    assert (
        sigv4.signature(key=key, string_to_sign=sts)
        == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_doc_put_object() -> None:
    block, signed = sigv4.canonical_headers(
        [
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("host", DOC_HOST),
            ("x-amz-content-sha256", sigv4.payload_hash(b"Welcome to Amazon S3.")),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ]
    )
    assert sigv4.canonical_uri("test$file.text") == "test%24file.text"
    creq = sigv4.canonical_request(
        method="PUT",
        uri="/test%24file.text",
        query="",
        headers=block,
        signed_headers=signed,
        payload_hash=sigv4.payload_hash(b"Welcome to Amazon S3."),
    )
    scope = sigv4.credential_scope(date="20130524", region="us-east-1", service="s3")
    sts = sigv4.string_to_sign(amz_date="20130524T000000Z", scope=scope, canonical_request=creq)
    key = sigv4.signing_key(secret_key=DOC_SECRET, date="20130524", region="us-east-1", service="s3")
    assert (
        sigv4.signature(key=key, string_to_sign=sts)
        == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    )


def test_doc_get_bucket_lifecycle() -> None:
    authz = _doc_sign("GET", "/", [("lifecycle", "")], [], b"")
    assert authz.endswith("Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in authz


def test_doc_list_objects() -> None:
    authz = _doc_sign("GET", "/", [("max-keys", "2"), ("prefix", "J")], [], b"")
    assert authz.endswith("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")


def test_keys_are_encoded_once_and_never_normalised() -> None:
    assert sigv4.canonical_uri("a//b/../c/./d") == "a//b/../c/./d"
    assert sigv4.canonical_uri("a b+c~%d") == "a%20b%2Bc~%25d"
    assert sigv4.canonical_uri("ሴ") == "%E1%88%B4"


def test_signing_key_cache_is_bounded_and_keyed_by_date() -> None:
    sigv4.clear_signing_key_cache()
    a = sigv4.signing_key(secret_key="s", date="20240101", region="r", service="s3")
    b = sigv4.signing_key(secret_key="s", date="20240102", region="r", service="s3")
    assert a != b
    for day in range(40):
        sigv4.signing_key(secret_key="s", date=f"202402{day:02d}", region="r", service="s3")
    assert len(sigv4._KEYS.get()) <= sigv4._KEY_CACHE_SIZE
    assert sigv4.signing_key(secret_key="s", date="20240101", region="r", service="s3") == a


def test_session_token_is_signed() -> None:
    headers = dict(
        sigv4.sign_s3(
            method="GET",
            host="h",
            path="/k",
            body_sha256=sigv4.EMPTY_SHA256,
            access_key="A",
            secret_key="S",
            session_token="TOKEN",
            region="us-east-1",
            now=0,
        )
    )
    assert headers["x-amz-security-token"] == "TOKEN"
    assert "x-amz-security-token" in headers["Authorization"]


# -- botocore as an independent oracle ---------------------------------------------------------

_key_chars = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
_keys = st.one_of(
    st.text(_key_chars, min_size=1, max_size=60),
    st.text(st.sampled_from(list("abc /+~%=&?#!$'()*,;:@[]-._")), min_size=1, max_size=40),
)
_params = st.lists(
    st.tuples(st.text(_key_chars, min_size=1, max_size=10), st.text(_key_chars, max_size=10)), max_size=4
)
_meta = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST"]),
    key=_keys,
    params=_params,
    meta=_meta,
    body=st.binary(max_size=200),
    region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2", "auto", "garage"]),
    when=st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 12, 31)),
    token=st.one_of(st.none(), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)),
    content_type=st.sampled_from([None, "application/json", "application/x-python-serialize"]),
)
def test_matches_botocore(
    method: str,
    key: str,
    params: list[tuple[str, str]],
    meta: dict[str, str],
    body: bytes,
    region: str,
    when: dt.datetime,
    token: str | None,
    content_type: str | None,
) -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.utils import percent_encode

    when = when.replace(microsecond=0, tzinfo=dt.timezone.utc)
    host = "bucket.s3.example.com:9000"
    headers = [(f"x-amz-meta-{k}", v) for k, v in meta.items()]
    if content_type:
        headers.append(("content-type", content_type))
    path = "/" + percent_encode(key, safe="/~")  # botocore's own key encoding, independent of ours
    assert "/" + sigv4.canonical_uri(key) == path

    request = AWSRequest(method=method, url=f"http://{host}{path}", headers=dict(headers), data=body, params=params)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4Auth(Credentials("AKIDTEST", "secret/with+chars", token), "s3", region).add_auth(request)

    ours = dict(
        sigv4.sign_s3(
            method=method,
            host=host,
            path=path,
            query=params,
            headers=headers,
            body_sha256=sigv4.payload_hash(body),
            access_key="AKIDTEST",
            secret_key="secret/with+chars",
            session_token=token,
            region=region,
            now=when.timestamp(),
        )
    )
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["x-amz-content-sha256"] == request.headers["X-Amz-Content-SHA256"]


def test_signing_key_cache_holds_no_secret_and_stays_small() -> None:
    """Rotated secrets must not linger in memory as cache keys; the cache stays bounded."""
    sigv4.clear_signing_key_cache()
    secrets = [f"rotated-secret-{i}-wJalrXUtnFEMI" for i in range(50)]
    keys = [sigv4.signing_key(secret_key=s, date="20240101", region="r", service="s3") for s in secrets]
    assert len(set(keys)) == 50
    assert len(sigv4._KEYS.get()) <= sigv4._KEY_CACHE_SIZE <= 16
    held = repr(list(sigv4._KEYS.get()))
    for secret in secrets:
        assert secret not in held and secret.encode() not in b"".join(k[0] for k in sigv4._KEYS.get())
    # The digest still tells secrets apart: a hit for the newest, a correct key for an old one.
    assert sigv4.signing_key(secret_key=secrets[-1], date="20240101", region="r", service="s3") == keys[-1]
    assert sigv4.signing_key(secret_key=secrets[0], date="20240101", region="r", service="s3") == keys[0]


def test_signing_key_cache_is_locked_against_concurrent_eviction() -> None:
    """Threads filling the cache at once never break it (a dict changed while iterated)."""
    import threading

    sigv4.clear_signing_key_cache()
    errors: list[BaseException] = []

    def fill(n: int) -> None:
        try:
            for i in range(300):
                sigv4.signing_key(secret_key=f"s{n}-{i}", date="20240101", region="r", service="s3")
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(sigv4._KEYS.get()) <= sigv4._KEY_CACHE_SIZE
    lock = sigv4._KEYS_LOCK.get()  # held: a new key waits for it before it goes in
    with lock:
        adding = threading.Thread(target=fill, args=(99,))
        adding.start()
        adding.join(0.3)
        assert adding.is_alive() and not errors
    adding.join(30)
    assert not adding.is_alive() and not errors
