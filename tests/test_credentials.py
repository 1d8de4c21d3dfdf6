"""Credentials values and the (static, environment) provider chain.

Integration: tests/integration/test_moto.py signs with credentials from the URL.
"""

from __future__ import annotations

import logging

import pytest

from s3result.errors import ConfigError, CredentialsError
from s3result.results import config
from s3result.s3.credentials import Credentials, CredentialSource, EnvProvider, StaticProvider, chain_for


def test_repr_masks_key_id_secret_and_token() -> None:
    c = Credentials("AKIDSENTINEL", "SECRETVALUE", "TOKENVALUE", expiry=123.0)
    for text in (repr(c), str(c), f"{c}", f"{c!r}"):
        assert "SECRETVALUE" not in text and "TOKENVALUE" not in text
        assert "AKIDSENTINEL" not in text and "access_key=***" in text


def test_static_before_environment() -> None:
    env = {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret"}
    chain = CredentialSource([StaticProvider("STATIC", "s"), EnvProvider(env)])
    assert chain.get().access_key == "STATIC" and chain.get().source == "settings"
    chain = CredentialSource([StaticProvider(None, None), EnvProvider(env)])
    assert chain.get().access_key == "ENVKEY" and chain.get().source == "environment"


def test_environment_session_token_and_legacy_name() -> None:
    base = {"AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S"}
    assert EnvProvider({**base, "AWS_SESSION_TOKEN": "T1"})().token == "T1"  # type: ignore[union-attr]
    assert EnvProvider({**base, "AWS_SECURITY_TOKEN": "T2"})().token == "T2"  # type: ignore[union-attr]
    assert EnvProvider({"AWS_SECRET_ACCESS_KEY": "S"})() is None  # passed over, as botocore does
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY: not set, while AWS_ACCESS_KEY_ID is"):
        EnvProvider({"AWS_ACCESS_KEY_ID": "K"})()  # botocore: PartialCredentialsError
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY: has leading or trailing whitespace"):
        EnvProvider({**base, "AWS_SECRET_ACCESS_KEY": "S "})()


def test_no_credentials_is_one_clear_line() -> None:
    with pytest.raises(CredentialsError) as exc:
        chain_for(config.build(url="s3result://bkt", environ={}).s3).get()
    assert "\n" not in str(exc.value)
    assert "AWS_ACCESS_KEY_ID" in str(exc.value) and "s3_access_key_id" in str(exc.value)


def test_debug_log_names_the_source_not_the_secret(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    with caplog.at_level(logging.DEBUG):
        creds = chain_for(config.build(url="s3result://bkt", environ={}).s3).get()
    assert creds.source == "environment"
    text = caplog.text
    assert "environment" in text and "ENVSECRET" not in text
