"""``s3result serve``: the testing kit's store in the foreground, as a user runs it.

Started as a subprocess on a free loopback port; what it prints is used as printed (the
``AWS_*`` exports and the ``result_backend`` URL); Ctrl-C (SIGINT) and SIGTERM end it cleanly.
The README's app through it, in a fresh venv: tests/e2e/test_readme_app.py.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s3result.results import config
from s3result.s3.client import S3Client
from s3result.testing.store import free_port

BIN = Path(sys.executable).parent


def _start(argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start serve and read its banner up to "Ctrl-C stops it." (or its end, if it fails)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C stops it."):
            break
    return proc, "".join(lines)


def _exports(banner: str) -> dict[str, str]:
    return dict(re.findall(r"^export (AWS_[A-Z0-9_]+)=(\S+)$", banner, re.M))


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_prints_what_a_worker_needs_and_stops_cleanly(sig: int, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    proc, banner = _start([str(BIN / "s3result"), "serve", "--port", str(port), "--bucket", "dev-results"])
    try:
        exports = _exports(banner)
        assert exports["AWS_ENDPOINT_URL_S3"] == f"http://127.0.0.1:{port}", banner
        assert set(exports) == {"AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
        assert 'result_backend = "s3result://dev-results/celery"' in banner, banner
        assert "gone when it stops" in banner, banner
        # The URL and the exports, as printed, reach the store with auth on and the bucket made.
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        settings = config.build(url="s3result://dev-results/celery")
        client = S3Client(settings.s3)
        try:
            client.put(settings.object_key("k"), b"v")
            assert client.get(settings.object_key("k")).body == b"v"
        finally:
            client.close()
        url = re.search(r'^result_backend = "(s3result\+http://[^"]+)"$', banner, re.M)
        assert url, banner
        keyed = config.build(url=url.group(1), environ={})
        assert (keyed.access_key, keyed.secret_key) == (exports["AWS_ACCESS_KEY_ID"], exports["AWS_SECRET_ACCESS_KEY"])
    finally:
        code, err = _stop(proc, sig)
    assert code == 0 and err.strip() == "s3result serve: stopped", err
    assert _port_free(port), "the store outlived serve"


def test_python_m_testing_store_is_serve_not_a_silent_exit() -> None:
    port = free_port()
    proc, banner = _start([sys.executable, "-m", "s3result.testing.store", "--port", str(port)])
    try:
        assert f"export AWS_ENDPOINT_URL_S3=http://127.0.0.1:{port}" in banner, banner
        assert 'result_backend = "s3result://my-bucket/celery"' in banner, banner
    finally:
        code, err = _stop(proc, signal.SIGINT)
    assert code == 0 and "Traceback" not in err, err


def _one_line_failure(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and done.stdout == "", (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_without_moto_one_line_names_the_extra(tmp_path: Path) -> None:
    """As if s3result were installed without its testing extra: a module named moto that is not there."""
    (tmp_path / "moto.py").write_text('raise ModuleNotFoundError("No module named \'moto\'", name="moto")\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    err = _one_line_failure([str(BIN / "s3result"), "serve", "--port", str(free_port())], env)
    assert err == "s3result serve: needs moto's server (No module named 'moto'): pip install 's3result[testing]'\n"


def test_a_port_in_use_and_a_bad_bucket_are_one_line_each() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        err = _one_line_failure([str(BIN / "s3result"), "serve", "--port", str(port)])
    assert f"port {port} on 127.0.0.1 is in use" in err and "--port" in err, err
    err = _one_line_failure([str(BIN / "s3result"), "serve", "--port", str(free_port()), "--bucket", "a"])
    assert err.startswith("s3result serve: --bucket 'a': ") and "not a valid bucket name" in err, err


def test_data_says_in_one_line_that_the_store_cannot_persist(tmp_path: Path) -> None:
    err = _one_line_failure([str(BIN / "s3result"), "serve", "--port", str(free_port()), "--data", str(tmp_path)])
    assert err.startswith(f"s3result serve: --data {tmp_path}: this store cannot persist (moto keeps"), err
    assert list(tmp_path.iterdir()) == []
