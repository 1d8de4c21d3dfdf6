"""CA bundle order and proxy choice from the environment, without a network.

Integration: tests/integration/test_network.py (a real proxy process, moto over TLS).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import pytest

from s3result.s3 import connect, network


def test_ca_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str | None, str | None]] = []
    real = ssl.create_default_context

    def spy(*, cafile: str | None = None, capath: str | None = None) -> ssl.SSLContext:
        seen.append((cafile, capath))
        return real()

    monkeypatch.setattr(ssl, "create_default_context", spy)
    env = {"AWS_CA_BUNDLE": "aws.pem", "SSL_CERT_FILE": "file.pem", "SSL_CERT_DIR": str(tmp_path)}
    network.ssl_context("mine.pem", env)
    network.ssl_context(None, env)
    network.ssl_context("true", {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"})
    network.ssl_context(None, {"SSL_CERT_DIR": str(tmp_path)})
    network.ssl_context(None, {})
    assert seen == [
        ("mine.pem", None),
        ("aws.pem", None),
        ("file.pem", None),
        (None, str(tmp_path)),
        (certifi.where(), None),
    ]


def test_unverified_context_warns_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    connect._WARNED.get().discard("ca_bundle=false")
    for value in ("false", "0", "off"):
        connect.warn_unverified(value)
        ctx = network.ssl_context(value, {"AWS_CA_BUNDLE": "ignored.pem"})
        assert ctx.verify_mode is ssl.CERT_NONE and not ctx.check_hostname
    connect.warn_unverified("true")
    connect.warn_unverified(None)
    assert sum("NOT verified" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, "https://s3.amazonaws.com", None),
        ({"HTTPS_PROXY": "http://p:1"}, "https://s3.amazonaws.com", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1"}, "http://minio:9000", None),
        ({"http_proxy": "p:2"}, "http://minio:9000", "http://p:2"),
        ({"ALL_PROXY": "http://p:3"}, "http://minio:9000", "http://p:3"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://s3.amazonaws.com", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".internal"}, "https://s3.x.internal", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".internal"}, "https://s3.amazonaws.com", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.5"}, "https://10.0.0.5:9000", None),
        ({"HTTPS_PROXY": ""}, "https://s3.amazonaws.com", None),
    ],
)
def test_environment_proxy_follows_httpx(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert network.environment_proxy(url) == expected
