"""Settings: every source, every alias, and a one-line error for each bad input.

Integration: tests/integration/test_moto.py builds settings from real URLs.
"""

from __future__ import annotations

import pickle

import pytest
from celery import Celery

from s3result.errors import ConfigError
from s3result.results.config import Addressing, ConditionalWrites, build, from_celery_conf, parse_url, redact_url

SECRET = "SeCrEt/with+slash"


def test_aws_url() -> None:
    s = build(url="s3result://my-bucket/results/celery?region=eu-west-1")
    assert (s.bucket, s.prefix, s.region, s.endpoint_url) == ("my-bucket", "results/celery", "eu-west-1", None)
    assert s.is_aws and not s.path_style
    assert s.base_url == "https://my-bucket.s3.eu-west-1.amazonaws.com"
    assert s.object_key("celery-task-meta-1") == "results/celery/celery-task-meta-1"


def test_aws_bucket_with_dots_uses_path_style() -> None:
    s = build(url="s3result://my.dotted.bucket?region=us-west-2")
    assert s.path_style and s.base_url == "https://s3.us-west-2.amazonaws.com"


def test_compatible_endpoint_url_with_credentials() -> None:
    s = build(url="s3result+http://AKID:SeCrEt%2Fwith%2Bslash@127.0.0.1:9000/bucket/a/b/")
    assert s.endpoint_url == "http://127.0.0.1:9000"
    assert (s.bucket, s.prefix, s.access_key, s.secret_key) == ("bucket", "a/b", "AKID", SECRET)
    assert s.path_style and s.base_url == "http://127.0.0.1:9000"
    # Celery strips 's3result+' before handing the URL over; both forms mean the same.
    assert build(url="http://AKID:SeCrEt%2Fwith%2Bslash@127.0.0.1:9000/bucket/a/b/") == s


def test_no_prefix_means_keys_at_the_bucket_root() -> None:
    s = build(url="s3result+https://minio.example:9000/bucket")
    assert s.prefix == "" and s.object_key("k") == "k"


def test_celery_s3_settings_are_a_drop_in() -> None:
    conf = {
        "s3_bucket": "legacy",
        "s3_base_path": "/results/",
        "s3_endpoint_url": "https://ceph.example",
        "s3_region": "default",
        "s3_access_key_id": "AK",
        "s3_secret_access_key": SECRET,
    }
    s = from_celery_conf(conf, "s3result://")
    assert (s.bucket, s.prefix, s.endpoint_url, s.region, s.access_key, s.secret_key) == (
        "legacy",
        "results",
        "https://ceph.example",
        "default",
        "AK",
        SECRET,
    )


def test_legacy_celery_s3_dict() -> None:
    legacy = {
        "aws_access_key_id": "AK",
        "aws_secret_access_key": SECRET,
        "bucket": "old-bucket",
        "base_path": "celery/",
        "aws_region": "eu-central-1",
        "reduced_redundancy": True,
        "encrypt_key": True,
    }
    s = from_celery_conf({"CELERY_S3_BACKEND_SETTINGS": legacy}, None)
    assert (s.bucket, s.prefix, s.region, s.storage_class, s.sse) == (
        "old-bucket",
        "celery",
        "eu-central-1",
        "REDUCED_REDUNDANCY",
        "AES256",
    )


def test_url_beats_options_beats_celery_settings_beats_environment() -> None:
    s = build(
        url="s3result://url-bucket?region=eu-west-3",
        options={"region": "eu-west-2", "read_timeout": "7"},
        celery_settings={"s3_region": "eu-west-1", "s3_bucket": "settings-bucket"},
        environ={"AWS_REGION": "us-west-1"},
    )
    assert (s.bucket, s.region, s.read_timeout) == ("url-bucket", "eu-west-3", 7.0)
    assert build(url="s3result://bkt", environ={"AWS_REGION": "us-west-1"}).region == "us-west-1"
    assert build(url="s3result://bkt", environ={"AWS_DEFAULT_REGION": "ap-east-1"}).region == "ap-east-1"
    assert build(url="s3result://bkt", environ={}).region == "us-east-1"


def test_environment_endpoint() -> None:
    s = build(url="s3result://bucket", environ={"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000"})
    assert s.endpoint_url == "http://127.0.0.1:9000" and s.path_style


def test_options_and_aliases() -> None:
    s = build(
        url=(
            "s3result+https://s3.example/bkt?addressing_style=virtual&timeout=3&connect_timeout=1.5"
            "&pool_size=4&retries=5&server_side_encryption=aws:kms&kms_key_id=k1"
            "&storage_class=standard_ia&conditional_writes=%20ETAG%20&max_result_size=2MiB"
        )
    )
    assert s.addressing is Addressing.VIRTUAL and s.base_url == "https://bkt.s3.example"
    assert (s.read_timeout, s.connect_timeout, s.max_connections, s.max_attempts) == (3.0, 1.5, 4, 5)
    assert (s.sse, s.sse_kms_key_id, s.storage_class) == ("aws:kms", "k1", "STANDARD_IA")
    assert s.conditional_writes is ConditionalWrites.ETAG and str(s.conditional_writes) == "etag"
    assert s.max_result_size == 2 * 1024 * 1024


@pytest.mark.parametrize(
    "word,path",
    [
        ("1", True),
        ("yes", True),
        ("On", True),
        ("y", True),
        ("0", False),
        ("no", False),
        ("off", False),
        ("n", False),
        ("FALSE", False),
    ],
)
def test_booleans(word: str, path: bool) -> None:
    s = build(url=f"s3result+https://s3.example/bkt?path_style={word}")
    assert s.path_style is path


def test_settings_are_frozen_and_pickle() -> None:
    s = build(url="s3result://bucket")
    with pytest.raises(AttributeError):
        s.bucket = "other"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(s)) == s


BAD = [
    ("s3result://", {}, "bucket", "no bucket given"),
    ("s3result://ab", {}, "bucket", "not a valid bucket name"),
    ("s3result://Upper", {}, "bucket", "not a valid bucket name"),
    ("s3result://bad_underscore", {}, "bucket", "not a valid bucket name"),
    ("s3result://192.168.1.1", {}, "bucket", "not a valid bucket name"),
    ("s3result://a..b", {}, "bucket", "not a valid bucket name"),
    ("s3result://-abc", {}, "bucket", "not a valid bucket name"),
    ("s3result://b" + "x" * 70, {}, "bucket", "not a valid bucket name"),
    ("s3result://bucket?colour=blue", {}, "colour", "unknown option"),
    ("s3result://bucket?region=EU WEST", {}, "region", "not a region name"),
    ("s3result://bucket?region=a&region=b", {}, "region", "given twice"),
    ("s3result://bucket?read_timeout=soon", {}, "read_timeout", "expected a number of seconds from 0.01 to 3600"),
    ("s3result://bucket?throttle_wait=abc", {}, "throttle_wait", "expected a number of seconds from 0 to 3600"),
    ("s3result://bucket?read_timeout=-1", {}, "read_timeout", "must be between"),
    ("s3result://bucket?max_connections=0", {}, "max_connections", "must be between"),
    ("s3result://bucket?max_connections=1.5", {}, "max_connections", "expected a whole number from 1 to 1024"),
    ("s3result://bucket?max_attempts=true", {}, "max_attempts", "expected a whole number from 1 to 20"),
    ("s3result://bucket?path_style=maybe", {}, "addressing", "expected auto, path or virtual"),
    ("s3result://bucket?addressing=diagonal", {}, "addressing", "expected auto, path or virtual"),
    ("s3result://bucket?sse=rot13", {}, "sse", "expected AES256 or aws:kms"),
    ("s3result://bucket?sse_kms_key_id=k", {}, "sse_kms_key_id", "only meaningful with sse=aws:kms"),
    ("s3result://bucket?storage_class=cheap", {}, "storage_class", "expected one of"),
    ("s3result://bucket?conditional_writes=sometimes", {}, "conditional_writes", "expected probe, etag or disabled"),
    ("s3result://bucket?max_result_size=big", {}, "max_result_size", "expected a size"),
    ("s3result://bucket?max_result_size=0", {}, "max_result_size", "at least 1 byte"),
    ("s3result://bucket?ca_bundle=/no/such/file.pem", {}, "ca_bundle", "is not a file"),
    ("s3result://bucket:9000/x", {}, "result_backend", "takes a bucket, not host:port"),
    ("s3result://AKID@bucket", {}, "result_backend", "no secret"),
    ("s3result://bucket/a#frag", {}, "result_backend", "fragment"),
    ("s3result+http://host:99999/b", {}, "result_backend", "not a valid URL"),
    ("s3result+https:///bucket", {}, "result_backend", "has no host"),
    ("s3://bucket", {}, "result_backend", "Celery's built-in boto3 backend"),
    ("ftp://host/bucket", {}, "result_backend", "unsupported scheme"),
    ("s3result+http://127.0.0.1:9000/bkt?addressing=virtual", {}, "addressing", "needs a DNS name"),
    ("s3result://bucket/a//b", {}, "prefix", "empty path segment"),
    ("s3result://bucket/" + "p" * 901, {}, "prefix", "too long"),
    ("s3result://bucket", {"s3_endpoint_url": "ftp://x"}, "endpoint_url", "not an http:// or https:// URL"),
    ("s3result://bucket", {"s3_endpoint_url": "https://h/path"}, "endpoint_url", "must be just scheme://host[:port]"),
    ("s3result://bucket", {"s3_endpoint_url": "https://u:SECRETPW@h"}, "endpoint_url", "must not hold credentials"),
    ("s3result://bucket", {"s3_access_key_id": "AK"}, "secret_key", "go together"),
    ("s3result://bucket", {"s3_secret_access_key": SECRET}, "access_key", "go together"),
    ("s3result://bucket", {"s3_access_key_id": " AK", "s3_secret_access_key": SECRET}, "access_key", "whitespace"),
    ("s3result://bucket?region=", {}, "region", "is empty"),
    ("s3result://bucket?region=%20", {}, "region", "is empty"),
    ("s3result://bucket?regoin=eu-west-1", {}, "regoin", "did you mean region?"),
    ("s3result://bucket?read_timeout=", {}, "read_timeout", "is empty"),
    ("s3result://bucket?ca_bundle=%20%20", {}, "ca_bundle", "is empty"),
    ("s3result://bucket?conditonal_writes=etag", {}, "conditonal_writes", "did you mean conditional_writes?"),
    ("s3result://bucket", {"s3_region": " "}, "s3_region", "is blank"),
]


@pytest.mark.parametrize("url,celery,setting,fragment", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_gets_one_line_error_naming_the_setting(
    url: str, celery: dict[str, str], setting: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        build(url=url, celery_settings=celery, environ={})
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{setting}:"), message
    assert fragment in message
    assert SECRET not in message and "SECRETPW" not in message
    assert exc.value.setting == setting
    assert pickle.loads(pickle.dumps(exc.value)).setting == setting


def test_unknown_option_in_options_dict_and_legacy_dict() -> None:
    with pytest.raises(ConfigError, match="^colour: unknown option"):
        build(url="s3result://bucket", options={"colour": "red"})
    with pytest.raises(ConfigError, match="^bogus: unknown option"):
        build(legacy={"bucket": "bbb", "bogus": 1})
    with pytest.raises(ConfigError, match="expected a dict"):
        build(options=["not", "a", "dict"])  # type: ignore[arg-type]


def test_an_empty_region_is_an_error_not_us_east_1_over_aws_region() -> None:
    """An empty value used to fall through to the default, over the environment's region."""
    env = {"AWS_REGION": "eu-central-1"}
    assert build(url="s3result://bucket", environ=env).region == "eu-central-1"
    for url in ("s3result://bucket?region=", "s3result://bucket?region=%20"):
        with pytest.raises(ConfigError, match=r"^region: is empty \('\s*'\); give a value, or leave the option out$"):
            build(url=url, environ=env)
    with pytest.raises(ConfigError, match="^region: is empty"):
        build(url="s3result://bucket", options={"region": "  "}, environ=env)
    with pytest.raises(ConfigError, match="^region: is empty"):
        build(legacy={"bucket": "bbb", "aws_region": ""}, environ=env)


def test_empty_prefix_and_unset_celery_settings_stay_allowed() -> None:
    assert build(url="s3result://bucket", options={"prefix": ""}, environ={}).prefix == ""
    conf = {"s3_base_path": "", "s3_region": "", "s3_endpoint_url": None}
    assert (
        build(url="s3result://bucket", celery_settings=conf, environ={"AWS_REGION": "eu-west-3"}).region == "eu-west-3"
    )


def test_a_mistyped_option_gets_the_closest_known_one() -> None:
    with pytest.raises(ConfigError) as exc:
        build(url="s3result://bucket?regoin=eu-west-1", environ={})
    assert str(exc.value).startswith("regoin: unknown option; did you mean region? known options are: ")
    with pytest.raises(ConfigError, match="did you mean read_timeout"):
        build(url="s3result://bucket", options={"read_timout": 3}, environ={})
    with pytest.raises(ConfigError) as far:
        build(url="s3result://bucket?colour=blue", environ={})
    assert "did you mean" not in str(far.value)


def test_compatible_stores_accept_legacy_bucket_names() -> None:
    assert build(url="s3result+https://ceph.example/Legacy_Bucket").bucket == "Legacy_Bucket"


def test_no_secret_in_repr_or_redacted_url() -> None:
    s = build(
        url=f"s3result+https://AKID:{SECRET.replace('/', '%2F').replace('+', '%2B')}@s3.example/bkt/p",
        options={"session_token": "TOKEN123"},
    )
    for text in (repr(s), str(s), s.redacted_url()):
        assert SECRET not in text and "TOKEN123" not in text and "SeCrEt" not in text
    assert s.redacted_url() == "s3result+https://***@s3.example/bkt/p"
    assert "AKID" not in repr(s) and "access_key=***" in repr(s)
    assert build(url=s.redacted_url().replace("***@", "")).bucket == "bkt"


def test_redact_url() -> None:
    assert (
        redact_url("s3result+https://AK:SeCrEt@h/b?secret_key=abc&region=x")
        == "s3result+https://***@h/b?secret_key=***&region=x"
    )
    assert redact_url("https://h/b") == "https://h/b"


def test_parse_url_keeps_raw_values() -> None:
    assert parse_url("s3result://bucket/p?region=eu-west-1") == {
        "bucket": "bucket",
        "prefix": "/p",
        "region": "eu-west-1",
    }


def test_raw_secret_with_slash_plus_and_at_is_accepted_and_never_shown() -> None:
    raw = "s3result+http://AKIA:Way/fyt+4x@l9g?x@127.0.0.1:9000/bucket/demo?region=eu-west-1"
    s = build(url=raw, environ={})
    assert (s.secret_key, s.bucket, s.prefix, s.region) == ("Way/fyt+4x@l9g?x", "bucket", "demo", "eu-west-1")
    assert redact_url(raw) == "s3result+http://***@127.0.0.1:9000/bucket/demo?region=eu-west-1"
    with pytest.raises(ConfigError) as exc:
        build(url=raw.replace(":9000", ":99999"), environ={})
    assert "fyt" not in str(exc.value)


def test_less_travelled_values_parse_or_fail_in_one_line() -> None:
    """Booleans given as bools, options given as None, path_style as a bool, an endpoint with a
    bad port, and the redacted URL of an AWS bucket without an endpoint."""
    from s3result.results.config import ConditionalWrites, ConfigError, build, redact_url

    assert str(ConditionalWrites.ETAG) == "etag"
    s = build(url="s3result://bucket/p", legacy={"reduced_redundancy": True, "encrypt_key": None}, environ={})
    assert s.storage_class == "REDUCED_REDUNDANCY" and s.sse is None
    assert build(url="s3result://bucket", options={"path_style": True}, environ={}).path_style
    assert not build(url="s3result://bucket", options={"addressing": False}, environ={}).path_style
    assert "region=" in build(url="s3result://bucket/p", environ={}).redacted_url()
    with pytest.raises(ConfigError, match="expected a boolean"):
        build(url="s3result://bucket", legacy={"reduced_redundancy": "maybe"}, environ={})
    with pytest.raises(ConfigError, match="invalid port"):
        build(url="s3result://bucket", options={"endpoint_url": "http://127.0.0.1:99999"}, environ={})
    assert redact_url("not a url") == "not a url"


@pytest.mark.parametrize("typo", ["s3result_option", "s3result_max_attempts", "s3result_opts"])
def test_a_mistyped_s3result_setting_is_named_not_ignored(typo: str) -> None:
    """Celery takes any setting name: ``s3result_option = {...}`` would leave every option out silently."""
    app = Celery("t", broker="memory://", set_as_current=False)
    app.conf.result_backend = "s3result://bucket/prefix"
    app.conf[typo] = {"read_timeout": 5}
    with pytest.raises(ConfigError, match=f"^{typo}: not a setting s3result reads; did you mean s3result_options"):
        from_celery_conf(app.conf, app.conf.result_backend)
    app.conf.s3result_options = {"read_timeout": 5}
    del app.conf[typo]
    assert from_celery_conf(app.conf, app.conf.result_backend).read_timeout == 5
