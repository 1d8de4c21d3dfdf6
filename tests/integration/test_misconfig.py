"""Bad input and misconfiguration against real servers: each gets one line that says what to do,
and no secret ever shows, in any exception, repr or log record (DEBUG on)."""

from __future__ import annotations

import datetime as dt
import http.server
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, states

from s3result.errors import AccessDenied, ConnectError, NotFound, ResultTooLarge, S3Error, S3ResultError
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.testing.store import MotoServer, free_port

SECRET = "Sup3r/Secret+Key=Sentinel"


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    assert SECRET not in text and SECRET not in repr(exc)
    return text


def _make_cert(tmp: Path) -> tuple[str, str]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def tls_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, str]]:
    cert, key = _make_cert(tmp_path_factory.mktemp("tls"))
    with MotoServer(bucket="tls-bucket", tls=(cert, key)) as server:
        yield server, cert


@pytest.fixture
def html_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _page(self) -> None:
            body = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_DELETE = _page

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _client(url: str) -> S3Client:
    return S3Client(config.build(url=url, environ={}).s3)


def test_unreachable_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    client = _client(f"s3result+http://AKID:{SECRET}@127.0.0.1:{free_port()}/bucket")
    with pytest.raises(ConnectError) as exc:
        client.get("k")
    text = _one_line(exc.value)
    assert "Connection refused" in text and "endpoint_url" in text


def test_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # No DNS query may leave this machine: the resolver answers "no such name" itself here.
    real = socket.getaddrinfo

    def resolve(host: str, *args: object, **kw: object) -> object:
        if host == "s3.no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(ConnectError) as exc:
        _client(f"s3result+http://AKID:{SECRET}@s3.no-such-host.invalid:9000/bucket?max_attempts=1").get("k")
    assert "cannot resolve" in _one_line(exc.value)


def test_tls_self_signed_needs_ca_bundle(tls_moto: tuple[MotoServer, str]) -> None:
    server, cert = tls_moto
    with pytest.raises(ConnectError) as exc:
        _client(server.url("tls") + "?max_attempts=1").get("tls/k")
    text = _one_line(exc.value)
    assert "TLS verification failed" in text and "ca_bundle" in text
    good = _client(server.url("tls") + f"?ca_bundle={cert}")
    good.put("tls/k", b"over https")
    assert good.get("tls/k").body == b"over https"


def test_access_denied_on_put(moto_server: MotoServer) -> None:
    url = f"s3result+http://{moto_server.readonly_access_key}:{moto_server.readonly_secret_key}@127.0.0.1:{moto_server.port}/{moto_server.bucket}/ro"
    client = _client(url)
    with pytest.raises(AccessDenied) as exc:
        client.put("ro/k", b"x")
    text = _one_line(exc.value)
    assert "s3:PutObject" in text
    assert client.get_or_none("ro/missing") is None  # it may read, and a missing key is 404


def test_missing_bucket_and_wrong_secret_are_one_line(moto_server: MotoServer) -> None:
    with pytest.raises(NotFound) as exc:
        _client(moto_server.url().replace(moto_server.bucket, "no-such-bucket")).put("k", b"x")
    assert "create the bucket" in _one_line(exc.value)
    with pytest.raises(AccessDenied) as exc2:
        _client(moto_server.url().replace(moto_server.secret_key, SECRET.replace("/", "%2F").replace("+", "%2B"))).get(
            "k"
        )
    assert "SignatureDoesNotMatch" in _one_line(exc2.value)


def test_html_answering_store(html_server: int) -> None:
    client = _client(f"s3result+http://AKID:{SECRET}@127.0.0.1:{html_server}/bucket")
    for call in (lambda: client.get("k"), lambda: client.put("k", b"x")):
        with pytest.raises(S3Error) as exc:
            call()
        assert "HTML" in _one_line(exc.value)


def test_result_over_the_cap_is_refused_before_sending(moto_server: MotoServer) -> None:
    app = Celery("cap", set_as_current=False)
    app.conf.result_backend = moto_server.url("cap") + "?max_result_size=1KiB"
    with pytest.raises(ResultTooLarge) as exc:
        app.backend.store_result("big", "x" * 5000, states.SUCCESS)
    assert "max_result_size" in _one_line(exc.value)


def test_plain_http_to_a_remote_host_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="s3result.s3.client"):
        _client(f"s3result+http://AKID:{SECRET}@objects.example.internal:9000/bucket")
        _client(f"s3result+http://AKID:{SECRET}@objects.example.internal:9000/bucket2")
        _client(f"s3result+http://AKID:{SECRET}@127.0.0.1:9000/bucket")
    warnings = [r for r in caplog.records if "unencrypted" in r.getMessage()]
    assert len(warnings) == 1 and "objects.example.internal" in warnings[0].getMessage()


def test_no_secret_in_any_log_record_exception_or_repr(
    moto_server: MotoServer, html_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Every error path above, once more, with DEBUG logging and a session token."""
    token = "Sentinel-Session-Token-0123456789"
    url_secret = SECRET.replace("/", "%2F").replace("+", "%2B")
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for url in (
            f"s3result+http://{moto_server.access_key}:{url_secret}@127.0.0.1:{moto_server.port}/{moto_server.bucket}",
            f"s3result+http://AKID:{url_secret}@127.0.0.1:{free_port()}/bucket?max_attempts=2",
            f"s3result+http://AKID:{url_secret}@127.0.0.1:{html_server}/bucket",
            f"s3result+http://AKID:{url_secret}@127.0.0.1:{moto_server.port}/bucket?max_result_size=1",
        ):
            settings = config.build(url=url, options={"session_token": token}, environ={})
            client = S3Client(settings.s3)
            seen += [repr(settings), str(settings), repr(client), settings.redacted_url()]
            for call in (
                lambda c=client: c.get("k"),
                lambda c=client: c.put("k", b"xx"),
                lambda c=client: c.delete("k"),
            ):
                try:
                    call()
                except S3ResultError as exc:
                    seen += [str(exc), repr(exc), repr(exc.__cause__)]
        for bad in (f"s3result+http://AKID:{url_secret}@127.0.0.1:99999/b", f"s3result://AKID:{url_secret}@bad_bucket"):
            try:
                config.build(url=bad, environ={})
            except S3ResultError as exc:
                seen.append(str(exc))
        app = Celery("secrets", set_as_current=False)
        app.conf.result_backend = f"s3result+http://AKID:{url_secret}@127.0.0.1:{moto_server.port}/{moto_server.bucket}"
        seen += [app.backend.as_uri(), repr(app.backend.settings)]
    records = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    assert len(seen) > 20 and caplog.records
    for text in seen + records:
        assert SECRET not in text and url_secret not in text and token not in text, text
        assert "Signature=" not in text, text


def test_embedded_store_with_a_bad_bucket_name_stops_its_server() -> None:
    """A failure while bootstrapping the embedded moto never leaves its process behind."""
    server = MotoServer(bucket="ab")  # S3 bucket names hold 3 to 63 characters
    with pytest.raises(RuntimeError, match="InvalidBucketName"):
        with server:
            pass  # pragma: no cover - never reached
    assert server._proc is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


@pytest.mark.parametrize("given", ["url", "env"])
def test_no_access_key_id_either_in_logs_reprs_urls_or_errors(
    moto_server: MotoServer, given: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access key ID is credential material too: no log line, repr, printed URL or exception
    shows it (nor the secret), whether the keys come in the URL or from AWS_* variables. Paths:
    a working store, a refused port (a wait's TimeoutError), a chord whose size cannot be
    recorded (ChordError and its log), the worker's start check, a bad URL, a wrong secret."""
    from types import SimpleNamespace

    from celery import chord
    from celery.exceptions import ChordError
    from celery.exceptions import TimeoutError as CeleryTimeoutError

    from s3result import worker as worker_module
    from s3result.s3.credentials import chain_for
    from s3result.testing.faults import FaultProxy

    keys = [(moto_server.access_key, moto_server.secret_key), ("AKIDSENTINEL0KEYID99", SECRET)]
    proxy = FaultProxy(moto_server.host, moto_server.port)
    proxy.answer("GET", "/keys-chord/chord-unlock-", 403, code="AccessDenied")
    seen: list[str] = []

    def url_for(port: int, key: str, secret: str, prefix: str) -> str:
        quoted = secret.replace("/", "%2F").replace("+", "%2B")
        user = f"{key}:{quoted}@" if given == "url" else ""
        return f"s3result+http://{user}127.0.0.1:{port}/{moto_server.bucket}/{prefix}"

    def app_for(url: str, key: str, secret: str) -> Celery:
        if given == "env":
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        app = Celery(f"keys-{given}", broker="memory://", set_as_current=False)
        app.conf.result_backend = url
        app.conf.s3result_options = {"max_attempts": 1}

        @app.task(name="add", shared=False)
        def add(x: int, y: int) -> int:
            return x + y

        backend = app.backend
        seen.extend([repr(backend), str(backend), backend.as_uri(), repr(backend.settings), str(backend.settings)])
        seen.extend([repr(backend.client), repr(chain_for(backend.settings.s3).get())])
        return app

    def attempt(call: Any) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - every message is checked below
            seen.extend([str(exc), repr(exc), str(exc.__cause__), repr(exc.__cause__)])

    try:
        with caplog.at_level(logging.DEBUG):
            good, wrong = keys
            app = app_for(url_for(moto_server.port, *good, "keys-ok"), *good)
            app.backend.store_result("keys-1", 1, states.SUCCESS)
            assert app.AsyncResult("keys-1").get(timeout=5) == 1
            worker_module.forget_checks()
            worker_module.check_store_at_start(sender=SimpleNamespace(app=app))

            down = app_for(url_for(free_port(), *good, "keys-down"), *good)
            with pytest.raises(CeleryTimeoutError):
                down.AsyncResult("keys-2").get(timeout=0.3)
            attempt(lambda: down.AsyncResult("keys-2").get(timeout=0.3))
            worker_module.forget_checks()
            worker_module.check_store_at_start(sender=SimpleNamespace(app=down))
            worker_module.forget_checks()  # as found: other tests check again

            producer = app_for(url_for(proxy.port, *good, "keys-chord"), *good)
            body = producer.tasks["add"].s(1)
            body.freeze()
            attempt(lambda: chord([producer.tasks["add"].s(i, i) for i in range(2)], body).apply_async())
            with pytest.raises(ChordError):
                producer.AsyncResult(body.id).get(timeout=5)
            attempt(lambda: producer.AsyncResult(body.id).get(timeout=5))

            bad = app_for(url_for(moto_server.port, *wrong, "keys-bad"), *wrong)
            attempt(lambda: bad.backend.store_result("keys-3", 1, states.SUCCESS))
            attempt(lambda: bad.AsyncResult("keys-3").get(timeout=1))
            if given == "url":
                attempt(lambda: config.build(url=url_for(99999, *wrong, "p"), environ={}))
    finally:
        proxy.close()
    records = [r.getMessage() for r in caplog.records]
    assert len(seen) > 30 and any("s3result" in r for r in records)
    for text in seen + records:
        for key, secret in keys:
            assert key not in text and secret not in text, text
