"""An embedded local S3 store for the demo and the tests: moto server with auth on.

moto validates SigV4 only once auth is on, and then only for credentials it issued itself.
So the store starts with auth off, an IAM user with an access key and an ``s3:*`` policy and
the bucket are created through its own APIs (signed by our signer; no boto), and then
``POST /moto-api/reset-auth`` with body ``0`` turns auth on. moto is not a runtime
dependency of s3result: install ``s3result[testing]`` for it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from urllib.parse import urlencode

from ..s3 import sigv4

__all__ = ["MotoServer", "free_port"]

_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


_READONLY_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
    }
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """Start moto's server on 127.0.0.1, bootstrap credentials and a bucket, stop on exit.

    It runs through ``s3result.testing.atomic_moto``: moto's conditional PUT is not atomic, S3's is.
    """

    def __init__(
        self,
        bucket: str = "s3result",
        *,
        start_timeout: float = 30.0,
        tls: tuple[str, str] | None = None,
        port: int = 0,
        own_process_group: bool = False,
    ) -> None:
        self.bucket = bucket
        self.host = "127.0.0.1"
        self.port = 0
        #: The port asked for; 0 picks a free one (and retries on a race for it).
        self._fixed_port = port
        #: The server in a session of its own: a terminal's Ctrl-C reaches only us, and we stop it.
        self._own_process_group = own_process_group
        self.access_key = ""
        self.secret_key = ""
        #: A second user that may only read (s3:GetObject, s3:ListBucket), for permission tests.
        self.readonly_access_key = ""
        self.readonly_secret_key = ""
        #: A second access key of the same user, for credential-rotation tests.
        self.second_access_key = ""
        self.second_secret_key = ""
        #: (certificate, key) PEM files: serve https with them instead of http.
        self.tls = tls
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        # The server's request log goes to a file, never a pipe: an unread pipe fills after
        # 64 KiB of log lines and then blocks every request thread of the server.
        self._log = tempfile.TemporaryFile()

    def __repr__(self) -> str:
        return f"MotoServer(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def url(self, prefix: str = "results") -> str:
        """A result-backend URL for this store, credentials included."""
        scheme = "https" if self.tls else "http"
        return f"s3result+{scheme}://{self.access_key}:{self.secret_key}@{self.host}:{self.port}/{self.bucket}/{prefix}"

    def start(self) -> MotoServer:
        """Start the server (retrying on a port race), bootstrap it, and turn auth on."""
        last_error = ""
        for _ in range(1 if self._fixed_port else 3):
            self.port = self._fixed_port or free_port()
            env = dict(os.environ, MOTO_PORT=str(self.port))
            # The store is not what a coverage run measures: tracing moto's own Python would slow
            # every request of every test (coverage's subprocess support keys on these).
            env.pop("COVERAGE_PROCESS_CONFIG", None)
            env.pop("COVERAGE_PROCESS_START", None)
            tls_args = ["-c", self.tls[0], "-k", self.tls[1]] if self.tls else []
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "s3result.testing.atomic_moto",
                    "-H",
                    self.host,
                    "-p",
                    str(self.port),
                    *tls_args,
                ],
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                env=env,
                start_new_session=self._own_process_group,
            )
            try:
                self._wait_ready()
                break
            except RuntimeError as exc:
                last_error = str(exc)
                self.stop()
        else:
            raise RuntimeError(f"moto server did not start: {last_error}")
        try:
            self._bootstrap()
        except BaseException:
            self.stop()  # a `with` block's __exit__ never runs when __enter__ raises
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read()[-500:].decode(errors="replace")
                raise RuntimeError(f"moto server exited with {self._proc.returncode}: {err}")
            try:
                status, _ = self._raw("GET", "/moto-api/data.json", b"", {})
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"moto server not answering on {self.endpoint} after {self._start_timeout}s")

    def _raw(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        conn: http.client.HTTPConnection
        if self.tls:
            import ssl  # only for the https flavour, whose certificate is our own test one

            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=10, context=context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _signed(self, method: str, path: str, body: bytes, *, service: str, content_type: str = "") -> bytes:
        host = f"{self.host}:{self.port}"
        headers = [("content-type", content_type)] if content_type else []
        signed = sigv4.sign_s3(
            method=method,
            host=host,
            path=path,
            headers=headers,
            body_sha256=sigv4.payload_hash(body),
            access_key="AKIDBOOTSTRAP0000000",
            secret_key="bootstrap",
            region="us-east-1",
            now=time.time(),
            service=service,
        )
        status, data = self._raw(method, path, body, dict(headers + signed))
        if status >= 300:
            raise RuntimeError(f"moto bootstrap {service} {method} {path} failed: {status} {data[:300]!r}")
        return data

    def _iam(self, **params: str) -> bytes:
        body = urlencode({**params, "Version": "2010-05-08"}).encode()
        return self._signed("POST", "/", body, service="iam", content_type="application/x-www-form-urlencoded")

    def _access_key(self, user: str) -> tuple[str, str]:
        data = self._iam(Action="CreateAccessKey", UserName=user)
        key = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", data)
        secret = re.search(rb"<SecretAccessKey>([^<]+)</SecretAccessKey>", data)
        if not key or not secret:
            raise RuntimeError("moto bootstrap: CreateAccessKey returned no key")
        return key.group(1).decode(), secret.group(1).decode()

    def _user(self, user: str, policy: str) -> tuple[str, str]:
        self._iam(Action="CreateUser", UserName=user)
        self._iam(Action="PutUserPolicy", UserName=user, PolicyName=f"{user}-policy", PolicyDocument=policy)
        return self._access_key(user)

    def _bootstrap(self) -> None:
        self._iam(Action="CreateUser", UserName="s3result")
        self._iam(Action="PutUserPolicy", UserName="s3result", PolicyName="s3result-all", PolicyDocument=_POLICY)
        self.access_key, self.secret_key = self._access_key("s3result")
        self.second_access_key, self.second_secret_key = self._access_key("s3result")
        self.readonly_access_key, self.readonly_secret_key = self._user("s3result-readonly", _READONLY_POLICY)
        self.create_bucket(self.bucket)
        status, data = self._raw("POST", "/moto-api/reset-auth", b"0", {})
        if status != 200:
            raise RuntimeError(f"moto reset-auth failed: {status} {data[:200]!r}")

    def create_bucket(self, bucket: str) -> None:
        """Create a bucket; before auth is on this needs no valid credentials."""
        if self.access_key and self._proc is not None and self.port:
            self._signed_as_user("PUT", f"/{bucket}")
        else:  # pragma: no cover - only during bootstrap
            self._signed("PUT", f"/{bucket}", b"", service="s3")

    def _signed_as_user(self, method: str, path: str) -> None:
        host = f"{self.host}:{self.port}"
        signed = sigv4.sign_s3(
            method=method,
            host=host,
            path=path,
            body_sha256=sigv4.EMPTY_SHA256,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region="us-east-1",
            now=time.time(),
        )
        status, data = self._raw(method, path, b"", dict(signed))
        if status >= 300:
            raise RuntimeError(f"moto {method} {path} failed: {status} {data[:300]!r}")

    @property
    def running(self) -> bool:
        """True while the server's process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            proc.kill()
            proc.wait()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by tests/integration/test_serve.py
    # ``python -m s3result.testing.store`` is ``s3result serve``: never a silent exit doing nothing.
    # The command runs in place of this process, so the kit never imports the command (which imports it).
    os.execv(sys.executable, [sys.executable, "-m", "s3result.cli", "serve", *sys.argv[1:]])
