"""Credential errors name the real source: the missing profile and the files looked in, no advice
the chosen source ignores, and the place a refused secret was given.

Integration: tests/integration/test_operating.py signs with a wrong secret from the URL against moto.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from s3result.errors import CredentialsError
from s3result.results import config
from s3result.s3.answers import credentials_hint
from s3result.s3.client import S3Client
from s3result.s3.credentials import chain_for


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


def test_aws_profile_that_does_not_exist_is_named_with_the_files(tmp_path: Path) -> None:
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = A\naws_secret_access_key = S\n")
    env = _env(tmp_path, AWS_PROFILE="prod")
    with pytest.raises(CredentialsError) as exc:
        chain_for(config.build(url="s3result://bucket", environ=env).s3, env).get()
    text = str(exc.value)
    assert "'prod'" in text and "AWS_PROFILE" in text and "not found" in text
    assert str(tmp_path / "credentials") in text and str(tmp_path / "config") in text
    assert "\n" not in text


def test_profile_setting_that_does_not_exist_says_so(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with pytest.raises(CredentialsError) as exc:
        chain_for(config.build(url="s3result://bucket?profile=prod", environ=env).s3, env).get()
    assert "'prod' (from profile= in the settings) not found" in str(exc.value)


def test_explicit_profile_without_keys_never_advises_the_environment(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[profile prod]\nregion = eu-west-1\n")
    env = _env(tmp_path, AWS_ACCESS_KEY_ID="IGNORED", AWS_SECRET_ACCESS_KEY="ignored")
    with pytest.raises(CredentialsError) as exc:
        chain_for(config.build(url="s3result://bucket?profile=prod", environ=env).s3, env).get()
    text = str(exc.value)
    assert "AWS_ACCESS_KEY_ID" not in text and "profile 'prod'" in text and str(tmp_path / "credentials") in text


def test_existing_profile_in_the_config_file_only_is_found(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[profile prod]\naws_access_key_id = P\naws_secret_access_key = S\n")
    env = _env(tmp_path, AWS_PROFILE="prod")
    assert chain_for(config.build(url="s3result://bucket", environ=env).s3, env).get().access_key == "P"


@pytest.mark.parametrize(
    ("url", "options", "expected"),
    [
        ("s3result://AKID:wrong@bucket", {}, "fix the secret access key in the result_backend URL"),
        ("s3result://bucket", {"s3_secret_access_key": "wrong", "s3_access_key_id": "AKID"}, "s3_secret_access_key"),
    ],
)
def test_the_hint_for_a_refused_secret_points_where_it_was_given(
    url: str, options: dict[str, str], expected: str
) -> None:
    settings = config.build(url=url, celery_settings=options, environ={})
    client = S3Client(settings.s3)
    client._credentials.get()
    hint = credentials_hint("SignatureDoesNotMatch", client._credentials.source, client.config.secret_origin)
    assert expected in hint
    if "URL" in expected:
        assert "s3_secret_access_key" not in hint and "AWS_SECRET_ACCESS_KEY" not in hint
        # The fix never advises a raw '/': Celery cannot mask such a URL (docs/configuration.md).
        assert "raw" not in hint and "percent-encode" in hint and "%2F" in hint


def test_the_hint_for_environment_and_shared_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(tmp_path, AWS_ACCESS_KEY_ID="E", AWS_SECRET_ACCESS_KEY="s")
    client = S3Client(
        config.build(url="s3result://bucket", environ=env).s3,
        credentials=chain_for(config.build(url="s3result://bucket", environ=env).s3, env),
    )
    client._credentials.get()
    assert credentials_hint("SignatureDoesNotMatch", client._credentials.source, client.config.secret_origin).endswith(
        "fix AWS_SECRET_ACCESS_KEY"
    )
    (tmp_path / "credentials").write_text("[prod]\naws_access_key_id = A\naws_secret_access_key = S\n")
    env = _env(tmp_path, AWS_PROFILE="prod")
    settings = config.build(url="s3result://bucket", environ=env)
    client = S3Client(settings.s3, credentials=chain_for(settings.s3, env))
    client._credentials.get()
    hint = credentials_hint("InvalidAccessKeyId", client._credentials.source, client.config.secret_origin)
    assert "aws_access_key_id" in hint and str(tmp_path / "credentials") in hint and "[prod]" in hint
