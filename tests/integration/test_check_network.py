"""``s3result check`` names the network failure it met, never with an IAM fix, and promptly.

Each case is a real socket on 127.0.0.1 (or the resolver answering "no such name" locally:
no DNS query leaves this machine): nothing listening, a server that accepts and never
answers, plain HTTP behind an https URL, and a self-signed certificate.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from pathlib import Path

import pytest

from s3result.cli import main
from s3result.testing.store import MotoServer, free_port


def _check(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", "--url", url])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _no_iam(out: str) -> None:
    assert "grant" not in out and "arn:aws" not in out and "s3:PutObject" not in out, out


def test_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code, out = _check(f"s3result+http://AKID:SECRET@127.0.0.1:{port}/bucket/p", capsys)
    assert code == 1
    assert f"network: connection refused: nothing listens on 127.0.0.1:{port}" in out
    assert "PUT:" not in out  # the first transport failure ends the run
    _no_iam(out)


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_an_endpoint_from_the_environment_is_named_where_it_was_set(
    variable: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint the shell exported is not where a user looks: the refusal's fix names the variable."""
    port = free_port()
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET")
    code, out = _check("s3result://bucket/p", capsys)
    assert code == 1, out
    assert f"endpoint_from: {variable}" in out, out
    assert f"fix: check the host and port of the endpoint (from {variable}), and that the store is running" in out
    code, out = _check(f"s3result+http://AKID:SECRET@127.0.0.1:{port}/bucket/p", capsys)  # the URL's wins
    assert "endpoint_from" not in out and "check the host and port of endpoint_url" in out, out


def test_unresolvable_host(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def resolve(host: str, *args: object, **kw: object) -> object:
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    code, out = _check("s3result+http://AKID:SECRET@s3.no-such-host.invalid:9000/bucket/p", capsys)
    assert code == 1 and "network: cannot resolve the host name 's3.no-such-host.invalid'" in out
    _no_iam(out)


def test_silent_server_is_diagnosed_within_seconds_line_by_line(silent_port: int) -> None:
    """The console script, through a pipe: each line arrives as it is known, not at the end."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("s3result")
    url = f"s3result+http://AKID:SECRET@127.0.0.1:{silent_port}/bucket/p?read_timeout=60"
    started = time.monotonic()
    proc = subprocess.Popen([str(exe), "check", "--url", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    seen: list[tuple[float, str]] = []
    for raw in proc.stdout:
        seen.append((time.monotonic() - started, raw.decode()))
    assert proc.wait(timeout=30) == 1
    out = "".join(line for _, line in seen)
    when = {line.split(":")[0].strip(): t for t, line in seen if ":" in line}
    assert f"network: 127.0.0.1:{silent_port} accepted the connection but sent no answer within 5s" in out
    _no_iam(out)
    network_at = next(t for t, line in seen if "network:" in line)
    assert network_at < 20, seen  # one probe, a 5 s read timeout: "within a few seconds", with margin
    assert network_at - when["endpoint"] >= 3, seen  # the configuration was printed before the wait, not after


def test_https_to_plain_http_says_use_http(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    url = moto_server.url("p").replace("s3result+http://", "s3result+https://")
    code, out = _check(url, capsys)
    assert code == 1 and "speaks plain HTTP" in out and "use s3result+http://" in out
    assert "ca_bundle" not in out and "certificate" not in out
    _no_iam(out)


def _self_signed(tmp: Path) -> tuple[str, str]:
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
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_self_signed_certificate_points_at_ca_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])

    def serve() -> None:
        try:
            conn, _ = server.accept()
            with context.wrap_socket(conn, server_side=True):
                pass
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        code, out = _check(f"s3result+https://AKID:SECRET@127.0.0.1:{port}/bucket/p", capsys)
    finally:
        server.close()
        thread.join(timeout=5)
    assert code == 1 and "does not verify" in out and "ca_bundle=/path/to/ca.pem" in out
    assert "plain HTTP" not in out
    _no_iam(out)


def _trickle_server(reply: bytes, stop: threading.Event) -> tuple[socket.socket, int]:
    """Answers every request with ``reply`` one byte every 0.5 s: no single read ever times out."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)

    def handle(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for byte in reply:
                    if stop.wait(0.5):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server, int(server.getsockname()[1])


def test_trickling_server_never_hangs_check() -> None:
    """A byte every 0.5 s resets every read timeout; check still ends, naming the network, no IAM line.

    (Trickled headers take the same path: the bound is on each probe, whatever it waits for.)
    """
    import subprocess
    import sys

    stop = threading.Event()
    server, port = _trickle_server(b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n" + b"x" * 4000, stop)
    exe = Path(sys.executable).with_name("s3result")
    url = f"s3result+http://AKID:SECRET@127.0.0.1:{port}/bucket/p"
    try:
        proc = subprocess.run([str(exe), "check", "--url", url], capture_output=True, text=True, timeout=120)
    finally:
        stop.set()
        server.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"network: 127.0.0.1:{port} answers too slowly" in out, out
    _no_iam(out)


def test_a_worker_s_refused_request_names_the_variable_that_set_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only ``check``: the client's own error, as a worker logs it, names AWS_ENDPOINT_URL_S3
    when that set the endpoint, and endpoint_url when the URL or a setting did."""
    from s3result.errors import ConnectError
    from s3result.results import config
    from s3result.s3.client import S3Client

    port = free_port()
    env = {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "S"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for url, named in (
        ("s3result://bucket/p?max_attempts=1", "check AWS_ENDPOINT_URL_S3 and"),
        (f"s3result+http://AKID:S@127.0.0.1:{port}/bucket/p?max_attempts=1", "check endpoint_url and"),
    ):
        client = S3Client(config.build(url=url, environ=env).s3)
        with pytest.raises(ConnectError) as exc:
            client.get("p/x")
        assert named in str(exc.value), exc.value
