"""A user's first hour, second pass: each misconfiguration gets a message naming the value's source.

Real parts: moto (auth on) from the session fixture, a server on 127.0.0.1 that answers 403
to everything, real ``celery worker`` and ``celery report`` processes. The conformance command:
tests/integration/test_conformance_command.py; the plugin named twice: test_testing_kit.py.
"""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from s3result.errors import ConfigError, NotFound
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.testing.store import MotoServer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A secret as AWS and moto hand them out: '/' and '+' included.
SECRET = "wh+rHH/Uz17Abc/dEf+ghIJKLmnopQRSTuvwxyz01"
ACCESS = "AKIAEXAMPLE000000000"


@pytest.fixture
def deny_all() -> Iterator[int]:
    """A store that answers 403 AccessDenied to every request, whatever its signature."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _deny(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>R</RequestId></Error>"
            self.send_response(403)
            self.send_header("content-type", "application/xml")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_DELETE = _deny

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _app_file(tmp_path: Path, backend: str, extra: str = "") -> Path:
    (tmp_path / "proj.py").write_text(
        "from celery import Celery\n"
        "app = Celery('proj', broker='memory://')\n"
        f"app.conf.result_backend = {backend!r}\n"
        f"{extra}"
        "@app.task\n"
        "def add(x, y):\n"
        "    return x + y\n"
    )
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3RESULT_"))}
    return {**env, "AWS_EC2_METADATA_DISABLED": "true", **extra}


def _worker(project: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "proj", "worker", "-P", "solo", "-l", "INFO", "--without-mingle"],
        cwd=project,
        env={**env, "PYTHONPATH": f"{project}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout + proc.stderr


# -- 2. a URL Celery can mask --------------------------------------------------------------------


def _serve_banner_url() -> str:
    from s3result.cli.serve import _banner

    store = MotoServer(bucket="my-bucket")
    store.port, store.access_key, store.secret_key = 9000, ACCESS, SECRET
    found = re.search(r'^result_backend = "(s3result\+http://[^"]+)"$', _banner(store), re.M)
    assert found
    return found.group(1)


def test_the_url_serve_prints_is_one_celery_masks(tmp_path: Path) -> None:
    from kombu.utils.url import maybe_sanitize_url

    url = _serve_banner_url()
    assert config.build(url=url, environ={}).secret_key == SECRET
    assert "Uz17" not in maybe_sanitize_url(url)  # raises on a raw '/' in the secret
    project = _app_file(tmp_path, url)
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "proj", "report"],
        cwd=project,
        env={**_env(), "PYTHONPATH": f"{project}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "result_backend" in done.stdout
    for part in re.split(r"[/+]", SECRET):
        assert part not in done.stdout, done.stdout


def test_check_warns_of_a_raw_slash_in_the_url_secret() -> None:
    from s3result.cli.check import security_findings

    app = Celery(set_as_current=False)
    app.conf.result_backend = f"s3result+http://{ACCESS}:{SECRET}@127.0.0.1:9000/bucket/p"
    settings = config.from_celery_conf(app.conf, app.conf.result_backend)
    found = [f for f in security_findings(settings, app) if "raw '/'" in f.detail]
    assert found and found[0].warning and "%2F" in found[0].fix, found
    assert SECRET not in found[0].detail + found[0].fix
    app.conf.result_backend = _serve_banner_url()
    assert not [f for f in security_findings(settings, app) if "raw '/'" in f.detail]


def test_the_worker_warns_of_a_raw_slash_at_start(tmp_path: Path, deny_all: int) -> None:
    project = _app_file(tmp_path, f"s3result+http://{ACCESS}:{SECRET}@127.0.0.1:{deny_all}/bucket/p")
    code, out = _worker(project, _env())
    assert code == 1, out  # the store denies everything: the start check stops it
    assert "the secret in result_backend holds a raw '/'" in out, out
    assert "Uz17Abc" not in out, out


# -- 3. half of a key pair in the environment --------------------------------------------------


def test_check_names_the_missing_secret(moto_server: MotoServer) -> None:
    done = subprocess.run(
        [str(BIN / "s3result"), "check", "--url", f"s3result+{moto_server.endpoint}/{moto_server.bucket}/p"],
        env=_env(AWS_ACCESS_KEY_ID=moto_server.access_key),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[FAIL] credentials: AWS_SECRET_ACCESS_KEY: not set, while AWS_ACCESS_KEY_ID is" in done.stdout
    assert "no S3 credentials found" not in done.stdout
    # Nothing could be signed, so nothing was sent: no probe claims the network or the signature.
    assert "[ ok ] network" not in done.stdout and "accepted the signature" not in done.stdout, done.stdout
    assert "see the error above" not in done.stdout, done.stdout


def test_the_worker_stops_at_start_without_the_secret(tmp_path: Path, moto_server: MotoServer) -> None:
    project = _app_file(tmp_path, f"s3result+{moto_server.endpoint}/{moto_server.bucket}/p")
    code, out = _worker(project, _env(AWS_ACCESS_KEY_ID=moto_server.access_key))
    assert code == 1, out
    critical = [line for line in out.splitlines() if "worker not started" in line]
    assert len(critical) == 1 and "AWS_SECRET_ACCESS_KEY" in critical[0], out


# -- 4. a store that answers 403 to everything --------------------------------------------------


def test_check_against_a_store_denying_everything(deny_all: int) -> None:
    done = subprocess.run(
        [str(BIN / "s3result"), "check", "--url", f"s3result+http://{ACCESS}:secret@127.0.0.1:{deny_all}/bucket/p"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "[ ok ] authentication" not in done.stdout, done.stdout
    assert "[WARN] authentication: not confirmed" in done.stdout, done.stdout
    for cut in re.findall(r"(\S+)\.\.\.", done.stdout):
        assert not cut[-1].isalpha() or cut.rstrip(",;:") in done.stdout.replace("...", " "), cut


def test_a_long_message_is_cut_between_words() -> None:
    from s3result.s3.errors import _first_sentence

    text = "unless the credentials have the permission on the bucket and " * 5
    cut = _first_sentence(text)
    assert cut.endswith("...") and len(cut) <= 160
    assert cut[:-3].split()[-1] in text.split(), cut


# -- 6. result_expires of 0 and below -----------------------------------------------------------


def _expiry(moto_server: MotoServer, value: Any) -> list[Any]:
    from s3result.cli.check import findings_for

    app = Celery(set_as_current=False)
    app.conf.result_backend = moto_server.url("first-hour-expiry")
    app.conf.result_expires = value
    _, found = findings_for(config.from_celery_conf(app.conf, app.conf.result_backend), app)
    return [f for f in found if f.name == "expiry"]


def test_check_refuses_a_negative_result_expires(moto_server: MotoServer) -> None:
    found = _expiry(moto_server, -5)
    assert found and not found[0].ok and "result_expires=-5" in found[0].detail, found
    assert "None" not in found[0].detail


def test_check_says_result_expires_0_as_0(moto_server: MotoServer) -> None:
    found = _expiry(moto_server, 0)
    assert found and "result_expires=0" in found[0].detail and "=None" not in found[0].detail, found
    assert found[0].warning, found


def test_lifecycle_apply_refuses_a_negative_result_expires(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _app_file(tmp_path, moto_server.url("first-hour-lifecycle"), "app.conf.result_expires = -5\n")
    done = subprocess.run(
        [str(BIN / "s3result"), "lifecycle", "--app", "proj", "--apply"],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "result_expires is -5, a negative time" in done.stderr, done.stderr
    assert "meant to be kept" not in done.stderr  # not "keep forever": -5 means nothing to Celery


# -- 7. errors naming where a value came from --------------------------------------------------


def test_a_pasted_space_in_the_secret_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"s3_secret_access_key.*whitespace"):
        config.build(
            url="s3result://",
            celery_settings={"s3_bucket": "bucket", "s3_access_key_id": ACCESS, "s3_secret_access_key": SECRET + " "},
            environ={},
        )
    with pytest.raises(ConfigError, match=r"result_backend URL.*whitespace"):
        config.build(url=f"s3result://{ACCESS}:{SECRET}%20@bucket", environ={})


def test_a_pasted_space_in_the_environment_secret_names_the_variable(moto_server: MotoServer) -> None:
    done = subprocess.run(
        [str(BIN / "s3result"), "check", "--url", f"s3result+{moto_server.endpoint}/{moto_server.bucket}/p"],
        env=_env(AWS_ACCESS_KEY_ID=moto_server.access_key, AWS_SECRET_ACCESS_KEY=moto_server.secret_key + " "),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "AWS_SECRET_ACCESS_KEY: has leading or trailing whitespace" in done.stdout, done.stdout
    assert "secret access key is wrong" not in done.stdout


def test_an_endpoint_without_a_scheme_names_the_variable() -> None:
    with pytest.raises(ConfigError) as exc:
        config.build(url="s3result://bucket/p", environ={"AWS_ENDPOINT_URL_S3": "127.0.0.1:9000"})
    assert "AWS_ENDPOINT_URL_S3" in str(exc.value) and "https://127.0.0.1:9000" in str(exc.value), exc.value


def test_an_upper_case_bucket_on_a_custom_endpoint_says_names_are_lower_case(moto_server: MotoServer) -> None:
    url = moto_server.url("p").replace(f"/{moto_server.bucket}/", "/MyResults/", 1)
    client = S3Client(config.build(url=url, environ={}).s3)
    try:
        with pytest.raises(NotFound) as exc:
            client.get("p/some-key")
    finally:
        client.close()
    assert exc.value.code == "NoSuchBucket" and "lower case" in str(exc.value), exc.value
    assert "bucket setting" in str(exc.value)


def test_s3_scheme_by_mistake_says_it_is_celerys_boto3_backend(tmp_path: Path) -> None:
    project = _app_file(tmp_path, f"s3://{ACCESS}:{SECRET}@bucket/p")
    done = subprocess.run(
        [str(BIN / "s3result"), "check", "--app", "proj"],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "s3:// is Celery's built-in boto3 backend" in done.stderr and "s3result://" in done.stderr, done.stderr
    assert "Missing bucket name" in done.stderr
    assert "Uz17" not in done.stderr
