"""``s3result lifecycle --apply`` and the expiry line of ``check``, on moto and on Ceph RGW.

The rule is merged into the bucket's configuration: an unrelated rule stays, a second run
changes nothing, and ``check`` says whether the prefix is covered and after how many days.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.servers import Target
from s3result.cli import main
from s3result.cli.expiry import coverage, read_rules
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.testing.store import MotoServer

UNRELATED = {
    "ID": "keep-logs-30d",
    "Filter": {"Prefix": "logs/"},
    "Status": "Enabled",
    "Expiration": {"Days": 30},
}


def _boto3(endpoint: str, key: str, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture(params=["moto", "ceph"])
def store(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, str]]:
    """(a URL with a fresh prefix on a fresh bucket, a boto3 client, the bucket)."""
    bucket = f"lc-{uuid.uuid4().hex[:12]}"
    if request.param == "moto":
        moto: MotoServer = request.getfixturevalue("moto_server")
        moto.create_bucket(bucket)
        url = moto.url("results").replace(f"/{moto.bucket}/", f"/{bucket}/")
        s3 = _boto3(moto.endpoint, moto.access_key, moto.secret_key)
    else:
        ceph: Target = request.getfixturevalue("ceph_target")
        s3 = _boto3(ceph.endpoint, ceph.access_key, ceph.secret_key)
        s3.create_bucket(Bucket=bucket)
        url = ceph.url("results").replace(f"/{ceph.bucket}/", f"/{bucket}/")
    yield url, s3, bucket


def _rules(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return list(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])


def test_apply_keeps_other_rules_and_is_idempotent(
    store: tuple[str, Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, s3, bucket = store
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [UNRELATED]})
    assert main(["lifecycle", "--apply", "--days", "3", "--url", url]) == 0
    assert "added rule 's3result-expire-results/'" in capsys.readouterr().out
    rules = {r["ID"]: r for r in _rules(s3, bucket)}
    assert set(rules) == {"keep-logs-30d", "s3result-expire-results/"}
    assert rules["keep-logs-30d"]["Expiration"]["Days"] == 30
    ours = rules["s3result-expire-results/"]
    assert ours["Expiration"]["Days"] == 3 and ours["Status"] == "Enabled"
    assert main(["lifecycle", "--apply", "--days", "3", "--url", url]) == 0
    again = capsys.readouterr().out
    assert "already applied" in again and "nothing changed" in again
    assert {r["ID"] for r in _rules(s3, bucket)} == {"keep-logs-30d", "s3result-expire-results/"}
    assert main(["lifecycle", "--apply", "--days", "5", "--url", url]) == 0
    assert "updated rule" in capsys.readouterr().out
    assert {r["ID"]: r["Expiration"]["Days"] for r in _rules(s3, bucket)} == {
        "keep-logs-30d": 30,
        "s3result-expire-results/": 5,
    }


def test_check_reports_covered_and_not_covered(store: tuple[str, Any, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, s3, bucket = store
    assert main(["check", "--json", "--url", url]) == 0
    expiry = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "expiry"]
    assert expiry and expiry[0]["warning"] and "kept forever" in expiry[0]["detail"]
    assert expiry[0]["fix"].startswith("s3result lifecycle --apply")
    assert main(["lifecycle", "--apply", "--url", url]) == 0  # Celery's default result_expires: 1 day
    assert "Celery's default result_expires" in capsys.readouterr().err
    assert main(["check", "--url", url]) == 0
    out = capsys.readouterr().out
    assert f"expiry: lifecycle rule 's3result-expire-results/' expires s3://{bucket}/results/ after 1 day" in out
    client = S3Client(config.build(url=url, environ={}).s3)
    covered = coverage(read_rules(client), "results")
    assert covered is not None and covered.days == 1
    assert coverage(read_rules(client), "") is None  # the rule does not cover the whole bucket


def test_everything_s3result_writes_lives_under_the_prefix() -> None:
    """One rule on the prefix expires results, group metas, chord counters and probe keys."""
    from celery import Celery

    from s3result.results.precondition import PROBE_PREFIX

    app = Celery("keys", set_as_current=False)
    app.conf.result_backend = "s3result+http://A:S@127.0.0.1:9/bucket/pre"
    b = app.backend
    for name in (b.get_key_for_task("t"), b.get_key_for_group("g"), b.get_key_for_chord("g")):
        assert b.store.key(name).startswith("pre/")
    assert PROBE_PREFIX == "s3result-probe"  # precondition.probe writes <prefix>/s3result-probe/<uuid>


def test_check_names_the_permission_to_read_the_lifecycle(
    moto_server: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = (
        moto_server.url("cli")
        .replace(moto_server.access_key, moto_server.readonly_access_key)
        .replace(moto_server.secret_key, moto_server.readonly_secret_key)
    )
    main(["check", "--json", "--url", url])
    checks = json.loads(capsys.readouterr().out)["checks"]
    expiry = [c for c in checks if c["name"] == "expiry"]
    assert expiry and '"s3:GetLifecycleConfiguration"' in expiry[0]["fix"], checks


def test_a_second_apply_reads_and_writes_nothing(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    from s3result.testing.proxy import CountingProxy

    bucket = f"lc-{uuid.uuid4().hex[:12]}"
    moto_server.create_bucket(bucket)
    proxy = CountingProxy("127.0.0.1", moto_server.port)
    try:
        url = moto_server.url("results").replace(
            f":{moto_server.port}/{moto_server.bucket}/", f":{proxy.port}/{bucket}/"
        )
        assert main(["lifecycle", "--apply", "--days", "2", "--url", url]) == 0
        assert proxy.snapshot() == {"GET": 1, "PUT": 1}
        assert main(["lifecycle", "--apply", "--days", "2", "--url", url]) == 0
        assert proxy.snapshot() == {"GET": 2, "PUT": 1}
    finally:
        proxy.close()
    assert "already applied" in capsys.readouterr().out


def test_workers_never_send_bucket_requests() -> None:
    """Only the command calls ``bucket_request``: the runtime sends HEAD/GET/PUT/DELETE of keys."""
    from pathlib import Path

    import s3result

    runtime = Path(s3result.__file__).parent
    users = [
        p.relative_to(runtime).as_posix()
        for p in runtime.rglob("*.py")
        if "bucket_request(" in p.read_text() and p.parts[-2] not in ("cli",)
    ]
    # Defined in the client, which calls it for one thing only, a directory bucket's
    # CreateSession (GET ?session), before any object request.
    assert sorted(users) == ["s3/client.py"]
    client_calls = (runtime / "s3" / "client.py").read_text().count("bucket_request(") - 1  # its def
    assert client_calls == 1 and 'bucket_request("GET", "session"' in (runtime / "s3" / "client.py").read_text()


_MAY_READ_LIFECYCLE = json.dumps(
    {
        "Version": "2012-10-17",
        # moto 5.2.6 checks its API's name (GetBucketLifecycleConfiguration) where AWS checks the
        # IAM action s3:GetLifecycleConfiguration: the reader gets both, so either moto may read.
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetLifecycleConfiguration", "s3:GetBucketLifecycleConfiguration"],
                "Resource": "*",
            }
        ],
    }
)


class _StoreWithLifecycleReader(MotoServer):
    """A store with one more user, who may read the bucket's lifecycle configuration and nothing else."""

    def _bootstrap(self) -> None:
        self.lifecycle_reader = self._user("lc-reader", _MAY_READ_LIFECYCLE)  # while auth is still off
        super()._bootstrap()


def test_apply_without_the_permission_names_the_lifecycle_actions(capsys: pytest.CaptureFixture[str]) -> None:
    """403 on the GET or the PUT of ?lifecycle: one line naming that action on the bucket, not object grants."""
    with _StoreWithLifecycleReader() as store:
        cases = [
            ((store.readonly_access_key, store.readonly_secret_key), "s3:GetLifecycleConfiguration"),
            (store.lifecycle_reader, "s3:PutLifecycleConfiguration"),
        ]
        for (key, secret), action in cases:
            url = store.url("denied").replace(store.access_key, key).replace(store.secret_key, secret)
            assert main(["lifecycle", "--apply", "--days", "3", "--url", url]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1, err
            assert f'grant "{action}" on "arn:aws:s3:::{store.bucket}"' in err, err
            assert "s3:GetObject" not in err and "s3:PutObject" not in err and secret not in err, err


def test_a_rule_of_our_id_over_another_prefix_is_retargeted_and_said(
    moto_server: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hand-edited: our rule ID over other/. --apply points it at the prefix and says what it covered."""
    bucket = f"lc-{uuid.uuid4().hex[:12]}"
    moto_server.create_bucket(bucket)
    s3 = _boto3(moto_server.endpoint, moto_server.access_key, moto_server.secret_key)
    moved = {
        "ID": "s3result-expire-results/",
        "Filter": {"Prefix": "other/"},
        "Status": "Enabled",
        "Expiration": {"Days": 9},
    }
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [moved, UNRELATED]})
    url = moto_server.url("results").replace(f"/{moto_server.bucket}/", f"/{bucket}/")
    assert main(["lifecycle", "--apply", "--days", "3", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "updated rule 's3result-expire-results/'" in out and "it covered 'other/' before" in out, out
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["s3result-expire-results/"]["Filter"] == {"Prefix": "results/"} and "keep-logs-30d" in rules


def test_the_expiry_fix_check_gives_for_a_whole_bucket_works(
    moto_server: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """No prefix: check's fix must be a command that runs (plain --apply refuses a prefix-less rule)."""
    bucket = f"lc-{uuid.uuid4().hex[:12]}"
    moto_server.create_bucket(bucket)
    url = moto_server.url("results").replace(f"/{moto_server.bucket}/results", f"/{bucket}")
    main(["check", "--url", url])
    out = capsys.readouterr().out
    fix = next(line.split("fix: ", 1)[1] for line in out.splitlines() if "fix: s3result lifecycle" in line)
    fix = fix.split(" (", 1)[0]  # the command, without its explanation
    assert fix == "s3result lifecycle --apply --whole-bucket --url URL", out
    assert main([url if word == "URL" else word for word in fix.split()[1:]]) == 0, capsys.readouterr().err
    capsys.readouterr()
    main(["check", "--url", url])
    assert f"expires s3://{bucket}/ after 1 day" in capsys.readouterr().out


def test_a_versioned_bucket_gets_its_noncurrent_versions_expired_too(
    store: tuple[str, Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """With versioning on, expiring or overwriting an object keeps the old version: check says so
    when the rule lacks NoncurrentVersionExpiration, and --apply's rule has it."""
    url, s3, bucket = store
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old_style = {"ID": "s3result-expire-results/", "Filter": {"Prefix": "results/"}, "Status": "Enabled"}
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [{**old_style, "Expiration": {"Days": 2}}]}
    )
    assert main(["check", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "the bucket keeps object versions, and rule 's3result-expire-results/' does not expire noncurrent" in out
    assert "fix: s3result lifecycle --apply --days 2 --url URL" in out, out  # the rule's own days kept
    assert main(["lifecycle", "--apply", "--days", "2", "--url", url]) == 0
    assert "updated rule" in capsys.readouterr().out
    ours = {r["ID"]: r for r in _rules(s3, bucket)}["s3result-expire-results/"]
    assert ours["Expiration"]["Days"] == 2 and ours["NoncurrentVersionExpiration"]["NoncurrentDays"] == 2
    assert main(["check", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "expires s3://" in out and "noncurrent" not in out, out
    # A rule of the user's own: the fix names it, s3result does not rewrite it.
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [{**old_style, "ID": "mine", "Expiration": {"Days": 1}}]},
    )
    assert main(["check", "--url", url]) == 0
    assert "fix: add NoncurrentVersionExpiration to rule 'mine'" in capsys.readouterr().out


def test_a_rule_of_its_own_that_expires_noncurrent_versions_is_enough(
    store: tuple[str, Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A versioned bucket often has one rule for every noncurrent version (Filter {}) beside the rules
    that expire current objects: check then has nothing to warn about. A rule that expires on a Date
    has no days to keep: its fix names the rule instead of a command that would make it "after 1 day"."""
    url, s3, bucket = store
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old_style = {"ID": "s3result-expire-results/", "Filter": {"Prefix": "results/"}, "Status": "Enabled"}
    noncurrent = {
        "ID": "expire-noncurrent-versions",
        "Filter": {},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
    }
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [{**old_style, "Expiration": {"Days": 2}}, noncurrent]}
    )
    assert main(["check", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "after 2 days" in out and "noncurrent" not in out, out
    # The same rule, disabled, or over another prefix, expires nothing of ours: the warning stands.
    for other in ({**noncurrent, "Status": "Disabled"}, {**noncurrent, "Filter": {"Prefix": "logs/"}}):
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [{**old_style, "Expiration": {"Days": 2}}, other]}
        )
        assert main(["check", "--url", url]) == 0
        assert "does not expire noncurrent" in capsys.readouterr().out
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [{**old_style, "Expiration": {"Date": "2030-01-01T00:00:00Z"}}]},
    )
    assert main(["check", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "does not expire noncurrent" in out, out
    assert "fix: add NoncurrentVersionExpiration to rule 's3result-expire-results/'" in out, out


def test_apply_whose_reply_is_lost_is_reported_and_a_rerun_finds_it_applied(
    moto_server: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store applies the PUT of the configuration and the reply is lost: --apply says it
    failed in one line (no retry: the command reports), and running it again finds the rule in
    place and changes nothing, the other rules kept."""
    from s3result.testing.faults import FaultProxy

    bucket = f"lc-{uuid.uuid4().hex[:12]}"
    moto_server.create_bucket(bucket)
    s3 = _boto3(moto_server.endpoint, moto_server.access_key, moto_server.secret_key)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [UNRELATED]})
    proxy = FaultProxy(moto_server.host, moto_server.port)
    try:
        url = (
            f"s3result+http://{moto_server.access_key}:{moto_server.secret_key}@127.0.0.1:{proxy.port}/{bucket}/results"
        )
        proxy.only_methods = {b"PUT"}
        proxy.set_faults(reset_response=1.0)
        assert main(["lifecycle", "--apply", "--days", "4", "--url", url]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"S3 PUT ?lifecycle to http://127.0.0.1:{proxy.port}" in err and "run the command again" in err, err
        assert moto_server.secret_key not in err
        assert proxy.stats["reset_response"] == 1
        rules = {r["ID"]: r for r in _rules(s3, bucket)}  # it was applied all the same
        assert rules["s3result-expire-results/"]["Expiration"]["Days"] == 4 and "keep-logs-30d" in rules
        proxy.set_faults()
        assert main(["lifecycle", "--apply", "--days", "4", "--url", url]) == 0
        assert "already applied" in capsys.readouterr().out
    finally:
        proxy.close()


def test_apply_against_a_store_that_never_answers_ends_in_one_line(
    silent_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store that accepts connections and never answers: --apply gives up after read_timeout
    with one line naming the endpoint, never a hang or a traceback."""
    import time

    url = f"s3result+http://AKID:SECRET@127.0.0.1:{silent_port}/bucket/results?read_timeout=1"
    started = time.monotonic()
    assert main(["lifecycle", "--apply", "--days", "2", "--url", url]) == 1
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert took < 5, took
    assert err.count("\n") == 1 and "Traceback" not in err and f"127.0.0.1:{silent_port}" in err, err
    assert "SECRET" not in err
