"""S3Config: the S3 client's own configuration, and the Settings that derive it.

Integration: tests/integration/test_moto.py runs a client made from an S3Config alone.
"""

from __future__ import annotations

import dataclasses

import pytest

from s3result.errors import ConfigError
from s3result.results import config
from s3result.s3.config import Addressing, S3Config


def test_repr_shows_no_credential() -> None:
    c = S3Config(bucket="b", access_key="AKIDSECRETISH", secret_key="Sup3r/Secret", session_token="TOKEN")
    text = repr(c)
    assert "Sup3r" not in text and "TOKEN" not in text and "AKIDSECRETISH" not in text and "***" in text


def test_addressing_and_base_url_follow_the_endpoint() -> None:
    assert S3Config(bucket="b").base_url == "https://b.s3.us-east-1.amazonaws.com"
    assert S3Config(bucket="a.b").base_url == "https://s3.us-east-1.amazonaws.com"  # dots: path-style
    local = S3Config(bucket="b", endpoint_url="http://127.0.0.1:9000")
    assert local.path_style and local.base_url == "http://127.0.0.1:9000"
    assert S3Config(bucket="b", addressing="virtual").addressing is Addressing.VIRTUAL  # type: ignore[arg-type]
    zonal = S3Config(bucket="r--usw2-az1--x-s3", region="us-west-2")
    assert zonal.express and zonal.base_url == "https://r--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com"


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"bucket": ""}, "bucket"),
        ({"bucket": "b", "endpoint_url": "ftp://host"}, "endpoint_url"),
        ({"bucket": "b", "access_key": "A"}, "secret_key"),
        ({"bucket": "b", "endpoint_url": "127.0.0.1:9000"}, "endpoint_url"),
        ({"bucket": "b", "region": ""}, "region"),
        ({"bucket": "b", "connect_timeout": -1}, "connect_timeout"),
        ({"bucket": "b", "read_timeout": 0}, "read_timeout"),
        ({"bucket": "b", "read_timeout": "30"}, "read_timeout"),
        ({"bucket": "b", "throttle_wait": -1}, "throttle_wait"),
        ({"bucket": "b", "throttle_wait": float("nan")}, "throttle_wait"),
        ({"bucket": "b", "throttle_wait": "abc"}, "throttle_wait"),
        ({"bucket": "b", "max_attempts": 0}, "max_attempts"),
        ({"bucket": "b", "max_connections": 0}, "max_connections"),
        ({"bucket": "b", "max_body_size": -5}, "max_body_size"),
        ({"bucket": "b", "endpoint_url": "http://AKID:topsecret@127.0.0.1:9000"}, "endpoint_url"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=f"^{setting}: ") as exc:
        S3Config(**kwargs)  # type: ignore[arg-type]
    assert "topsecret" not in str(exc.value) and "\n" not in str(exc.value)


def test_settings_derive_the_client_config() -> None:
    settings = config.build(
        url="s3result+https://K:S@store.example:9000/bkt/pre?max_result_size=1KiB&sse=AES256&max_attempts=5",
        environ={},
    )
    s3 = settings.s3
    assert (s3.bucket, s3.endpoint_url, s3.access_key, s3.secret_key) == ("bkt", "https://store.example:9000", "K", "S")
    assert (s3.max_body_size, s3.sse, s3.max_attempts) == (1024, "AES256", 5)
    assert s3.secret_origin == "the result_backend URL"
    assert settings.base_url == s3.base_url
    again = dataclasses.replace(settings, region="eu-west-1")
    assert again.s3.region == "eu-west-1" and again != settings  # derived anew on every replace
    assert dataclasses.replace(again, region=settings.region) == settings


def test_a_store_id_is_where_requests_go_and_the_bucket() -> None:
    """One ``StoreId`` per bucket reached one way: credentials and timeouts play no part, the
    addressing does; ``str()`` is the spelling the verdict's key digests (kept in buckets)."""
    from s3result.s3.config import StoreId

    a = S3Config(bucket="b", endpoint_url="http://127.0.0.1:9000/", region="us-east-1", access_key="A", secret_key="S")
    b = dataclasses.replace(a, access_key="B", secret_key="T", read_timeout=3.0)
    assert a.store_id == b.store_id == StoreId("http://127.0.0.1:9000", "b")
    assert len({a.store_id, b.store_id}) == 1
    assert str(a.store_id) == f"{a.base_url} {a.bucket}" == "http://127.0.0.1:9000 b"
    virtual = dataclasses.replace(a, addressing=Addressing.VIRTUAL)
    assert virtual.store_id != a.store_id and virtual.store_id.endpoint == "http://b.127.0.0.1:9000"
    assert S3Config(bucket="b", region="eu-west-1").store_id == StoreId("https://b.s3.eu-west-1.amazonaws.com", "b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.store_id.bucket = "c"  # type: ignore[misc]
