"""The credential provider chain: each provider alone, their order, refresh, and failures.

Metadata endpoints and STS are fakes on loopback (tests/fakes.py). moto server's STS does not
work here: its single endpoint routes a request to a service by its signature, and
AssumeRoleWithWebIdentity is unsigned, so moto answers 500. End to end with a real worker:
tests/e2e/test_rotation.py.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from s3result.errors import CredentialsError
from s3result.results import config
from s3result.s3 import sigv4
from s3result.s3.credentials import (
    ADVISORY_REFRESH,
    MANDATORY_REFRESH,
    Credentials,
    CredentialSource,
    chain_for,
    providers,
)
from s3result.s3.credentials.providers import _container_url
from s3result.s3.transport import one_shot
from s3result.testing.store import free_port
from tests.fakes import FakeServer, creds_json

# The HTTP providers get their one-shot transport from the chain (chain_for); here, the same one.
ContainerProvider = functools.partial(providers.ContainerProvider, request=one_shot)
IMDSProvider = functools.partial(providers.IMDSProvider, request=one_shot)
WebIdentityProvider = functools.partial(providers.WebIdentityProvider, request=one_shot)

SECRET = "Provider/Secret+Sentinel"


def _chain(env: dict[str, str], **settings: Any) -> CredentialSource:
    return chain_for(config.build(url="s3result://bucket-name", options=settings or None, environ={}).s3, env)


def _imds(token_status: int = 200, creds: bytes | None = None) -> FakeServer:
    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if path == "/latest/api/token":
            return (token_status, b"IMDS-TOKEN") if method == "PUT" else (405, b"")
        if token_status == 200 and headers.get("x-aws-ec2-metadata-token") != "IMDS-TOKEN":
            return (401, b"")
        if path == "/latest/meta-data/iam/security-credentials/":
            return (200, b"worker-role\n")
        if path == "/latest/meta-data/iam/security-credentials/worker-role":
            return (200, creds if creds is not None else creds_json("IMDSKEY", SECRET))
        return (404, b"")

    return FakeServer(handler)


# -- each provider alone ----------------------------------------------------------------------


def test_imds_v2(tmp_path: Path) -> None:
    server = _imds()
    try:
        env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": server.url}
        creds = _chain(env).get()
        assert creds.access_key == "IMDSKEY" and creds.secret_key == SECRET and creds.expiry
        assert creds.source == "imds (role worker-role)"
        assert (
            server.seen[0].method == "PUT" and server.seen[0].headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
        )
        assert all(s.headers.get("x-aws-ec2-metadata-token") == "IMDS-TOKEN" for s in server.seen[1:])
    finally:
        server.close()


def test_imds_v1_fallback_only_when_token_refused_and_allowed() -> None:
    server = _imds(token_status=403)
    try:
        env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": server.url}
        assert IMDSProvider(env)().access_key == "IMDSKEY"  # type: ignore[union-attr]
        assert "x-aws-ec2-metadata-token" not in server.seen[-1].headers
        assert IMDSProvider({**env, "AWS_EC2_METADATA_V1_DISABLED": "true"})() is None
    finally:
        server.close()


def test_imds_disabled_sends_nothing() -> None:
    server = _imds()
    try:
        assert (
            IMDSProvider({"AWS_EC2_METADATA_SERVICE_ENDPOINT": server.url, "AWS_EC2_METADATA_DISABLED": "true"})()
            is None
        )
        assert server.seen == []
    finally:
        server.close()


@pytest.mark.parametrize("trouble", ["slow", "down", "garbage", "no-role"])
def test_imds_trouble_moves_on_to_a_clear_error(trouble: str) -> None:
    server = _imds(creds=b"<html>not json</html>" if trouble == "garbage" else None)
    if trouble == "slow":
        server.delay = 2.0
    url = server.url if trouble != "down" else f"http://127.0.0.1:{free_port()}"
    if trouble == "no-role":
        server.handler = lambda m, p, h, b: (200, b"TOKEN") if p.endswith("token") else (404, b"")
    try:
        env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": url, "AWS_METADATA_SERVICE_TIMEOUT": "0.5"}
        assert IMDSProvider(env)() is None
        with pytest.raises(CredentialsError) as exc:
            _chain(env).get()
        assert "\n" not in str(exc.value) and "imds" in str(exc.value)
    finally:
        server.close()


def test_container_full_uri_with_token_file_reread(tmp_path: Path) -> None:
    server = FakeServer(lambda m, p, h, b: (200, creds_json("CONTAINERKEY", SECRET)) if p == "/creds" else (404, b""))
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    try:
        env = {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server.url}/creds",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored",
        }
        provider = ContainerProvider(env)
        assert provider().access_key == "CONTAINERKEY"  # type: ignore[union-attr]
        token_file.write_text("second-token")
        provider()
        assert [s.headers.get("authorization") for s in server.seen] == ["first-token", "second-token"]
        del env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
        ContainerProvider(env)()
        assert server.seen[-1].headers["authorization"] == "ignored"
    finally:
        server.close()


def test_container_refuses_cr_lf_and_foreign_hosts() -> None:
    with pytest.raises(CredentialsError, match="CR or LF"):
        ContainerProvider(
            {
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/x",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": "a\r\nX-Evil: 1",
            }
        )()
    # Rejected before any connection is attempted: no packet leaves for 10.0.0.1.
    with pytest.raises(CredentialsError, match="must be https"):
        ContainerProvider({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://10.0.0.1/creds"})()
    assert (
        _container_url({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"})
        == "http://169.254.170.2/v2/credentials/abc"
    )
    for ok in (
        "http://169.254.170.23/x",
        "http://[fd00:ec2::23]/x",
        "http://localhost:9/x",
        "https://creds.example/x",
        "http://127.0.0.2/x",
    ):
        assert _container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": ok}) == ok


def test_container_down_or_garbage_is_one_clear_line() -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{free_port()}/creds"}
    with pytest.raises(CredentialsError) as exc:
        ContainerProvider(env, timeout=0.5)()
    assert "unreachable" in str(exc.value) and "\n" not in str(exc.value)
    server = FakeServer(lambda m, p, h, b: (200, b"{not json"))
    try:
        with pytest.raises(CredentialsError, match="not a credentials document"):
            ContainerProvider({"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server.url}/c"})()
    finally:
        server.close()


def test_web_identity_rereads_the_token_file(tmp_path: Path) -> None:
    sts_answer = (
        b"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
        b"<AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>" + SECRET.encode() + b"</SecretAccessKey>"
        b"<SessionToken>SESSION</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>"
        b"</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
    )
    server = FakeServer(lambda m, p, h, b: (200, sts_answer))
    token = tmp_path / "token"
    token.write_text("jwt-1")
    try:
        env = {
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
            "AWS_ENDPOINT_URL_STS": server.url,
            "AWS_ROLE_SESSION_NAME": "sess",
        }
        creds = WebIdentityProvider(env)()
        assert creds is not None and (creds.access_key, creds.token, creds.source) == (
            "ASIAWEB",
            "SESSION",
            "web-identity",
        )
        token.write_text("jwt-2")
        WebIdentityProvider(env)()
        bodies = [s.body.decode() for s in server.seen]
        assert "WebIdentityToken=jwt-1" in bodies[0] and "WebIdentityToken=jwt-2" in bodies[1]
        assert "RoleSessionName=sess" in bodies[0] and "Action=AssumeRoleWithWebIdentity" in bodies[0]
        assert "authorization" not in server.seen[0].headers  # unsigned, as the API requires
    finally:
        server.close()
    assert WebIdentityProvider({"AWS_REGION": "eu-west-3"}).endpoint() == "https://sts.eu-west-3.amazonaws.com"
    assert WebIdentityProvider({}).endpoint() == "https://sts.amazonaws.com"


def test_shared_files_profiles_and_credential_process(tmp_path: Path) -> None:
    cred_file, conf_file = tmp_path / "credentials", tmp_path / "config"
    cred_file.write_text(
        f"[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = {SECRET}\n\n[work]\naws_access_key_id = WORKKEY\naws_secret_access_key = w\naws_session_token = T\n"
    )
    script = tmp_path / "proc.py"
    script.write_text(
        "import json; print(json.dumps({'Version': 1, 'AccessKeyId': 'PROCKEY', 'SecretAccessKey': 's', "
        "'SessionToken': 'ST', 'Expiration': '2099-01-01T00:00:00Z'}))"
    )
    conf_file.write_text(
        f"[profile fromconfig]\naws_access_key_id = CONFKEY\naws_secret_access_key = c\nregion = ap-south-1\n\n[profile proc]\ncredential_process = {sys.executable} {script}\n"
    )
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(cred_file), "AWS_CONFIG_FILE": str(conf_file)}
    assert _chain(env).get().access_key == "DEFAULTKEY"
    assert _chain({**env, "AWS_PROFILE": "work"}).get().token == "T"
    assert _chain(env, profile="fromconfig").get().access_key == "CONFKEY"
    proc = _chain(env, profile="proc").get()
    assert (proc.access_key, proc.token, proc.expiry is not None) == ("PROCKEY", "ST", True)
    # The profile's region is used when nothing else sets one.
    assert (
        config.build(url="s3result://bucket-name", options={"profile": "fromconfig"}, environ=env).region
        == "ap-south-1"
    )


def test_failing_credential_process_is_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "config"
    conf.write_text(f'[default]\ncredential_process = {sys.executable} -c "import sys; sys.exit(3)"\n')
    with pytest.raises(CredentialsError) as exc:
        _chain({"AWS_CONFIG_FILE": str(conf), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}).get()
    assert "exited with 3" in str(exc.value) and "\n" not in str(exc.value)


# -- precedence -------------------------------------------------------------------------------


def test_precedence_matches_botocore(tmp_path: Path) -> None:
    imds = _imds()
    container = FakeServer(lambda m, p, h, b: (200, creds_json("CONTAINERKEY", "c")))
    cred_file = tmp_path / "credentials"
    cred_file.write_text("[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = f\n")
    env = {
        "AWS_ACCESS_KEY_ID": "ENVKEY",
        "AWS_SECRET_ACCESS_KEY": "e",
        "AWS_SHARED_CREDENTIALS_FILE": str(cred_file),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{container.url}/c",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url,
    }
    try:
        assert _chain(env, access_key="SETKEY", secret_key="s").get().access_key == "SETKEY"
        assert _chain(env).get().access_key == "ENVKEY"
        del env["AWS_ACCESS_KEY_ID"]
        assert _chain(env).get().access_key == "FILEKEY"
        cred_file.write_text("")
        assert _chain(env).get().access_key == "CONTAINERKEY"
        del env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        assert _chain(env).get().access_key == "IMDSKEY"
        # An explicit profile setting skips the environment variables, as in botocore.
        cred_file.write_text("[p]\naws_access_key_id = PROFILEKEY\naws_secret_access_key = p\n")
        env.update(AWS_ACCESS_KEY_ID="ENVKEY", AWS_SECRET_ACCESS_KEY="e")
        assert _chain(env, profile="p").get().access_key == "PROFILEKEY"
    finally:
        imds.close()
        container.close()


# -- refresh ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class RotatingProvider:
    name = "rotating"

    def __init__(self, clock: Clock, lifetime: float = 3600.0) -> None:
        self.clock, self.lifetime, self.calls, self.fail = clock, lifetime, 0, False
        self.barrier = threading.Event()

    def __call__(self) -> Credentials:
        self.calls += 1
        self.barrier.wait(0.05)  # make concurrent refreshes overlap if they could
        if self.fail:
            raise OSError("metadata endpoint down")
        return Credentials(
            f"KEY{self.calls}", f"{SECRET}{self.calls}", "T", expiry=self.clock.now + self.lifetime, source=self.name
        )


def _hammer(source: CredentialSource, threads: int = 16) -> list[Any]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(source.get())
        except CredentialsError as exc:
            out.append(exc)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def test_refresh_windows_under_16_threads(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    provider = RotatingProvider(clock)
    source = CredentialSource([provider], clock=clock)
    assert source.get().access_key == "KEY1"
    clock.now += 3600 - ADVISORY_REFRESH - 1  # not yet
    assert {c.access_key for c in _hammer(source)} == {"KEY1"} and provider.calls == 1
    clock.now += 2  # advisory: one refresher, the rest go on
    got = _hammer(source)
    assert provider.calls == 2 and {c.access_key for c in got} <= {"KEY1", "KEY2"}
    assert source.get().access_key == "KEY2"
    clock.now += 3600 - MANDATORY_REFRESH + 1  # mandatory: all wait for one refresh
    got = _hammer(source)
    assert provider.calls == 3 and {c.access_key for c in got} == {"KEY3"}
    provider.fail = True
    clock.now += 3600 - ADVISORY_REFRESH + 1  # advisory failure: only logged
    with caplog.at_level(logging.WARNING):
        assert {c.access_key for c in _hammer(source)} == {"KEY3"}
    assert "advisory credential refresh" in caplog.text and SECRET not in caplog.text
    clock.now += ADVISORY_REFRESH - MANDATORY_REFRESH + 1  # mandatory failure: one clear error
    errors = _hammer(source)
    assert all(isinstance(e, CredentialsError) for e in errors)
    assert "refreshing credentials from rotating failed" in str(errors[0]) and "\n" not in str(errors[0])


def test_signing_keys_dropped_when_the_secret_changes() -> None:
    clock = Clock()
    source = CredentialSource([RotatingProvider(clock, lifetime=60)], clock=clock)
    creds = source.get()
    sigv4.signing_key(secret_key=creds.secret_key, date="20260101", region="r", service="s3")
    assert sigv4._KEYS.get()
    source.get()  # within the mandatory window at once: refreshed, new secret
    assert not any(k[0] == creds.secret_key for k in sigv4._KEYS.get())


def test_no_secret_in_debug_logs_of_any_provider(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    imds = _imds()
    try:
        with caplog.at_level(logging.DEBUG):
            _chain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}).get()
            _chain(
                {"AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": "TOKENSENTINEL"}
            ).get()
        assert "imds" in caplog.text and "environment" in caplog.text
        assert SECRET not in caplog.text and "TOKENSENTINEL" not in caplog.text and "IMDS-TOKEN" not in caplog.text
    finally:
        imds.close()


def test_container_relative_uri_must_be_a_path() -> None:
    """'@127.0.0.1:8080/x' would make 169.254.170.2 userinfo: the token would go to 127.0.0.1."""
    server = FakeServer(lambda m, p, h, b: (200, creds_json("STOLEN", SECRET)))
    try:
        port = server.url.rsplit(":", 1)[1]
        for relative in (f"@127.0.0.1:{port}/x", f":{port}/x", ".evil.example/x", "x", f"@[::1]:{port}/x"):
            env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": relative, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "tok"}
            with pytest.raises(CredentialsError, match="RELATIVE_URI must be a path"):
                ContainerProvider(env, timeout=0.5)()
        assert server.seen == []  # nothing reached the other host, token or not
    finally:
        server.close()
    assert _container_url({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/a@b/c?x=1"}) == "http://169.254.170.2/a@b/c?x=1"


def test_container_full_uri_host_checked_after_parsing() -> None:
    """The allowed-host check reads the host the connection will use (userinfo does not count)."""
    refused = (
        "http://169.254.170.2@10.0.0.1/x",
        "http://localhost.evil.example/x",
        "http://169.254.170.2.evil.example/x",
        "ftp://127.0.0.1/x",
        "https:///x",
        "http://[fd00:ec2::24]/x",
    )
    for full in refused:
        with pytest.raises(CredentialsError, match="FULL_URI must be https"):
            _container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": full})
    with pytest.raises(CredentialsError, match="not a valid URL"):
        _container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:port/x"})
    for ok in ("http://169.254.170.2/x", "http://169.254.170.2@127.0.0.1/x", "http://[::1]:80/x", "https://10.0.0.1/x"):
        assert _container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": ok}) == ok


def test_container_endpoint_retries_a_5xx_under_the_retry_policy_and_not_a_4xx() -> None:
    """The container endpoint's hiccup is retried with the client's backoff; a refusal is not."""
    answers = [(503, b"busy"), (200, creds_json("AFTER503", SECRET))]
    server = FakeServer(lambda m, p, h, b: answers.pop(0) if answers else (404, b""))
    try:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server.url}/creds"}
        assert ContainerProvider(env)().access_key == "AFTER503"  # type: ignore[union-attr]
        assert len(server.seen) == 2
        with pytest.raises(CredentialsError, match="HTTP 404"):
            ContainerProvider(env)()
        assert len(server.seen) == 3  # a 404 is asked once
    finally:
        server.close()
