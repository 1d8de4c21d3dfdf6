"""Proxies and CA bundles from the environment, through a real proxy process and moto over TLS.

The proxy (tests/httpproxy.py) is a separate process on 127.0.0.1 that logs each request it
carries, so the tests count what went through it. Unit side: s3result/network.py.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
from celery import Celery

from s3result.errors import ConnectError
from s3result.results import config
from s3result.s3 import connect, network
from s3result.s3.client import S3Client
from s3result.testing.store import MotoServer
from tests.integration.test_misconfig import _make_cert

REPO = Path(__file__).resolve().parents[2]


class Proxy:
    def __init__(self, log: Path) -> None:
        self.log = log
        log.touch()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.httpproxy", str(log)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def seen(self) -> list[str]:
        return self.log.read_text().splitlines()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    p = Proxy(tmp_path / "proxy.log")
    yield p
    p.close()


@pytest.fixture(scope="module")
def tls_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, str]]:
    cert, key = _make_cert(tmp_path_factory.mktemp("tls"))
    with MotoServer(bucket="tls-bucket", tls=(cert, key)) as server:
        yield server, cert


def _client(url: str) -> S3Client:
    return S3Client(config.build(url=url + ("&" if "?" in url else "?") + "max_attempts=1", environ={}).s3)


def test_http_proxy_from_environment_carries_every_request(
    monkeypatch: pytest.MonkeyPatch, s3result_store: MotoServer, proxy: Proxy
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    client = _client(s3result_store.url("proxied"))
    client.put("proxied/k", b"through the proxy")
    assert client.get("proxied/k").body == b"through the proxy"
    client.close()
    base = f"http://127.0.0.1:{s3result_store.port}/{s3result_store.bucket}/proxied/k"
    assert proxy.seen() == [f"PUT {base}", f"GET {base}"]


def test_no_proxy_goes_direct(monkeypatch: pytest.MonkeyPatch, s3result_store: MotoServer, proxy: Proxy) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    client = _client(s3result_store.url("direct"))
    client.put("direct/k", b"no proxy")
    assert client.get("direct/k").body == b"no proxy"
    assert proxy.seen() == []
    assert network.environment_proxy("http://other.example:9000") == proxy.url  # only the listed hosts bypass


def test_https_through_connect_with_ca_from_aws_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tls_store: tuple[MotoServer, str], proxy: Proxy
) -> None:
    """The worker's view: a Celery backend behind HTTPS_PROXY, trusting a private CA by AWS_CA_BUNDLE."""
    server, cert = tls_store
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("AWS_CA_BUNDLE", cert)
    app = Celery(set_as_current=False)
    app.conf.result_backend = server.url("tunnel")
    backend = app.backend
    backend.store_result("t-proxy", 42, "SUCCESS")
    assert backend.get_task_meta("t-proxy")["result"] == 42
    seen = proxy.seen()
    assert seen and set(seen) == {f"CONNECT 127.0.0.1:{server.port}"}  # one tunnel per pooled connection


def test_ca_bundle_order_setting_then_aws_ca_bundle_then_ssl_cert_file(
    monkeypatch: pytest.MonkeyPatch, tls_store: tuple[MotoServer, str]
) -> None:
    server, cert = tls_store
    url = server.url("order")
    with pytest.raises(ConnectError, match="TLS verification failed"):
        _client(url).get("order/missing")  # certifi alone does not know the private CA
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    assert _client(url).get_or_none("order/missing") is None
    monkeypatch.setenv("AWS_CA_BUNDLE", certifi.where())  # AWS_CA_BUNDLE comes before SSL_CERT_FILE
    with pytest.raises(ConnectError, match="TLS verification failed"):
        _client(url).get("order/missing")
    assert _client(f"{url}?ca_bundle={cert}").get_or_none("order/missing") is None  # the setting comes first
    monkeypatch.setenv("AWS_CA_BUNDLE", cert)
    monkeypatch.delenv("SSL_CERT_FILE")
    assert _client(url).get_or_none("order/missing") is None


def test_verification_off_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tls_store: tuple[MotoServer, str]
) -> None:
    server, _ = tls_store
    connect._WARNED.get().discard("ca_bundle=false")
    with caplog.at_level(logging.WARNING, logger="s3result"):
        for _ in range(3):
            assert _client(server.url("unverified") + "?ca_bundle=false").get_or_none("unverified/k") is None
    warnings = [r.getMessage() for r in caplog.records if "NOT verified" in r.getMessage()]
    assert len(warnings) == 1 and "ca_bundle=false" in warnings[0]


def test_sts_over_https_trusts_aws_ca_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credential endpoints (here STS for web identity) trust the same CAs as the store."""
    import http.server
    import ssl
    import threading

    from s3result.errors import CredentialsError
    from s3result.s3.credentials.providers import WebIdentityProvider
    from s3result.s3.transport import one_shot

    answer = (
        b"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
        b"<AccessKeyId>ASIATLS</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
        b"<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
        b"</AssumeRoleWithWebIdentityResponse>"
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    cert, key = _make_cert(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("jwt")
    env = {
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
        "AWS_ENDPOINT_URL_STS": f"https://127.0.0.1:{server.server_address[1]}",
    }
    try:
        with pytest.raises(CredentialsError, match="certificate"):
            WebIdentityProvider(env, request=one_shot)()
        monkeypatch.setenv("AWS_CA_BUNDLE", cert)
        creds = WebIdentityProvider(env, request=one_shot)()
        assert creds is not None and creds.access_key == "ASIATLS"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_a_dead_proxy_is_named_never_its_password(
    monkeypatch: pytest.MonkeyPatch,
    s3result_store: MotoServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    variable: str,
) -> None:
    """A refused proxy: the error names the variable and NO_PROXY, not endpoint_url; no password anywhere."""
    from s3result.cli import main
    from s3result.testing.store import free_port

    port = free_port()
    monkeypatch.setenv(variable, f"http://user:PROXY-SENTINEL-PW@127.0.0.1:{port}")
    caplog.set_level(logging.DEBUG)
    client = _client(s3result_store.url("deadproxy"))
    with pytest.raises(ConnectError) as caught:
        client.get_or_none("deadproxy/k")
    client.close()
    text = str(caught.value)
    assert f"the proxy at 127.0.0.1:{port} (from {variable})" in text and "NO_PROXY" in text, text
    assert "check endpoint_url" not in text, text
    assert main(["check", "--url", s3result_store.url("deadproxy")]) == 1
    out = capsys.readouterr()
    report = out.out + out.err
    assert f"network: cannot reach the proxy at 127.0.0.1:{port} (from {variable})" in report, report
    assert "nothing listens on" not in report and "grant" not in report, report
    for seen in (text, repr(caught.value), report, caplog.text):
        assert "PROXY-SENTINEL-PW" not in seen
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # covering the endpoint: straight to the store
    client = _client(s3result_store.url("deadproxy"))
    assert client.get_or_none("deadproxy/k") is None
    client.close()


def test_a_proxy_refusing_the_tunnel_is_not_called_unreachable(
    monkeypatch: pytest.MonkeyPatch, tls_store: tuple[MotoServer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A proxy that answers CONNECT with 407: its answer is reported, with the variable and no password."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    store, cert = tls_store
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:PROXY-SENTINEL-PW@127.0.0.1:{port}")
    monkeypatch.setenv("AWS_CA_BUNDLE", cert)
    try:
        assert main_check(store.url("p")) == 1
    finally:
        server.close()
    out = capsys.readouterr()
    report = out.out + out.err
    assert f"network: the proxy at 127.0.0.1:{port} (from HTTPS_PROXY) refused to carry the request" in report, report
    assert "fix: check HTTPS_PROXY (its user and password)" in report, report
    assert "cannot reach" not in report and "PROXY-SENTINEL-PW" not in report and "grant" not in report


def main_check(url: str) -> int:
    from s3result.cli import main

    return main(["check", "--url", url])
