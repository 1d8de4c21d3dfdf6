"""Real S3-compatible servers, started on 127.0.0.1 with free ports and stopped afterwards.

Shared by the conformance suite and the test suite. Each launcher is a context manager that
yields a ``Target``: endpoint, bucket, credentials and the store's name. A server that fails
to start raises; nothing here skips silently.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from s3result.s3 import sigv4
from s3result.testing.store import MotoServer, free_port

__all__ = [
    "Target",
    "ceph_target",
    "create_bucket",
    "moto_target",
    "nanio_target",
    "stop_all",
    "swift_target",
    "wait_http",
]


@dataclass(frozen=True)
class Target:
    """Where a store listens and how to talk to it."""

    name: str
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def url(self, prefix: str = "", **options: str) -> str:
        """An s3result URL for this target (secret percent-encoded)."""
        host = urlsplit(self.endpoint).netloc
        scheme = urlsplit(self.endpoint).scheme
        query = "&".join(f"{k}={v}" for k, v in {"region": self.region, **options}.items())
        path = f"/{self.bucket}/{prefix}" if prefix else f"/{self.bucket}"
        return f"s3result+{scheme}://{quote(self.access_key, safe='')}:{quote(self.secret_key, safe='')}@{host}{path}?{query}"

    def __repr__(self) -> str:
        return f"Target({self.name!r}, {self.endpoint!r}, bucket={self.bucket!r})"


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """Terminate servers in reverse start order; kill what does not stop in time."""
    for proc in reversed(procs):
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(host: str, port: int, proc: subprocess.Popen[bytes] | None, timeout: float, log: str = "") -> None:
    """Wait until something answers HTTP on host:port (any status), or fail with the log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering on {host}:{port}: {_tail(log)}")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on {host}:{port} within {timeout}s: {_tail(log)}")


def _tail(path: str, n: int = 1500) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def create_bucket(endpoint: str, bucket: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
    """PUT a bucket with a signed request (s3result's client only ever touches keys)."""
    parts = urlsplit(endpoint)
    body = b""
    if region != "us-east-1":
        body = (
            "<CreateBucketConfiguration xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>"
            f"<LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
        ).encode()
    headers = sigv4.sign_s3(
        method="PUT",
        host=parts.netloc,
        path=f"/{bucket}",
        body_sha256=sigv4.payload_hash(body),
        access_key=access_key,
        secret_key=secret_key,
        region=region,
        now=time.time(),
    )
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("PUT", f"/{bucket}", body=body, headers=dict(headers))
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.status >= 300 and b"BucketAlreadyOwnedByYou" not in data:
        raise RuntimeError(f"creating bucket {bucket!r} on {endpoint} failed: {resp.status} {data[:300]!r}")


@contextlib.contextmanager
def moto_target(bucket: str = "conformance") -> Iterator[Target]:
    """moto server with auth on (see s3result.testing.store).

    Its conditional PUT is made atomic by s3result.testing.atomic_moto: stock moto 5.2 checks
    If-Match, then writes, with no lock between, and under load two writers both win.
    """
    with MotoServer(bucket=bucket) as server:
        yield Target("moto", server.endpoint, bucket, server.access_key, server.secret_key)


@contextlib.contextmanager
def nanio_target(bucket: str = "conformance") -> Iterator[Target]:
    """nanio: validates signatures, but ignores conditional writes."""
    exe = shutil.which("nanio") or os.path.join(os.path.dirname(sys.executable), "nanio")
    if not os.path.exists(exe):
        raise RuntimeError("nanio is not installed: pip install nanio (it is in the test extras)")
    with tempfile.TemporaryDirectory(prefix="s3result-nanio-") as tmp:
        port = free_port()
        log = os.path.join(tmp, "nanio.log")
        env = dict(os.environ, NANIO_ACCESS_KEY="nanioaccess", NANIO_SECRET_KEY="nanio/secret+key")
        with open(log, "wb") as logf:
            proc = subprocess.Popen(
                [
                    exe,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--data-dir",
                    os.path.join(tmp, "data"),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            wait_http("127.0.0.1", port, proc, 30, log)
            target = Target("nanio", f"http://127.0.0.1:{port}", bucket, "nanioaccess", "nanio/secret+key")
            create_bucket(target.endpoint, bucket, target.access_key, target.secret_key)
            yield target
        finally:
            stop_all([proc])


_CEPH_CONF = """[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
mon warn on insecure global id reclaim allowed = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
run dir = {tmp}/run
admin socket = {tmp}/run/$name.asok
log file = {tmp}/log/$name.log
pid file = {tmp}/run/$name.pid
ms bind ipv6 = false
# the gateway talks to the monitor in crc mode; without this it waits for secure auth
ms mon client mode = crc secure
[mon]
mon data = {tmp}/mon/$cluster-$id
mon cluster log file = {tmp}/log/cluster.log
[osd]
osd data = {tmp}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = 2147483648
# memstore has no file-name limit: let RGW hold S3's full 1024-byte keys
osd max object name len = 2048
osd max object namespace len = 256
[client.rgw]
# without tcp_nodelay every small GET waits ~44 ms for a delayed ACK
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {tmp}/rgw
"""


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(
            f"{binary} is not on PATH: apt-get install --no-install-recommends radosgw ceph-mon ceph-osd"
        )
    return path


@contextlib.contextmanager
def ceph_target(bucket: str = "conformance", timeout: float = 90.0) -> Iterator[Target]:
    """Ceph RGW 16.2: one monitor, one memstore OSD and radosgw, all under a temp dir."""
    import uuid

    for name in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph"):
        _need(name)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="s3result-ceph-") as tmp:
        for sub in ("mon", "osd/ceph-0", "run", "log", "rgw"):
            os.makedirs(os.path.join(tmp, sub), exist_ok=True)
        mon_port, rgw_port = free_port(), free_port()
        conf = os.path.join(tmp, "ceph.conf")
        with open(conf, "w") as f:
            f.write(_CEPH_CONF.format(fsid=uuid.uuid4(), mon_port=mon_port, rgw_port=rgw_port, tmp=tmp))

        def run(*args: str) -> str:
            done = subprocess.run(list(args), capture_output=True, timeout=timeout)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(args[:3])} failed ({done.returncode}): {done.stderr.decode()[-800:]}")
            return done.stdout.decode()

        def daemon(name: str, *args: str) -> None:
            log = open(os.path.join(tmp, "log", f"{name}.out"), "wb")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT))
            log.close()

        try:
            with open(conf) as f:
                fsid = next(line.split("=", 1)[1].strip() for line in f if line.startswith("fsid"))
            monmap = os.path.join(tmp, "monmap")
            run("monmaptool", "--create", "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", "--fsid", fsid, monmap)
            run("ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", monmap)
            daemon("mon", "ceph-mon", "-c", conf, "-i", "a", "-f")
            run("ceph", "-c", conf, "--connect-timeout", "30", "osd", "create")
            run("ceph-osd", "-c", conf, "-i", "0", "--mkfs")
            daemon("osd", "ceph-osd", "-c", conf, "-i", "0", "-f")
            daemon("rgw", "radosgw", "-c", conf, "-n", "client.rgw", "-f")
            wait_http("127.0.0.1", rgw_port, procs[-1], timeout, os.path.join(tmp, "log", "rgw.out"))
            access, secret = "CEPHS3RESULTKEY00000", "ceph/secret+key"
            run(
                "radosgw-admin",
                "-c",
                conf,
                "user",
                "create",
                "--uid",
                "s3result",
                "--display-name",
                "s3result",
                "--access-key",
                access,
                "--secret-key",
                secret,
            )
            target = Target("ceph", f"http://127.0.0.1:{rgw_port}", bucket, access, secret)
            create_bucket(target.endpoint, bucket, access, secret)
            yield target
        finally:
            stop_all(procs)


_SWIFT_SERVER_CONF = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
devices = {tmp}/srv
mount_check = false
swift_dir = {tmp}
workers = 0
disable_fallocate = true
[pipeline:main]
pipeline = {kind}-server
[app:{kind}-server]
use = egg:swift#{kind}
"""

_SWIFT_PROXY_CONF = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
swift_dir = {tmp}
workers = 0
[pipeline:main]
pipeline = catch_errors proxy-logging cache s3api tempauth proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached_port}
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_s3result_tester = swift-secret .admin
"""


def _wait_writable(target: Target, deadline: float) -> None:
    """Until an object PUT succeeds: a cluster answers 503 while its servers start."""
    from s3result.errors import S3ResultError
    from s3result.results import config
    from s3result.s3.client import S3Client

    client = S3Client(config.build(url=target.url(), environ={}).s3)
    while True:
        try:
            client.put("s3result-ready-check", b"ready")
            client.delete("s3result-ready-check")
            return
        except S3ResultError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextlib.contextmanager
def swift_target(bucket: str = "conformance", timeout: float = 60.0) -> Iterator[Target]:
    """OpenStack Swift with s3api and tempauth (Debian packages): proxy, account, container,
    object servers and memcached, one device each, all under a temp dir. Opt-in: it is heavy.
    """
    for name in (
        "swift-proxy-server",
        "swift-object-server",
        "swift-account-server",
        "swift-container-server",
        "swift-ring-builder",
        "memcached",
    ):
        if shutil.which(name) is None:
            raise RuntimeError(
                f"{name} is not on PATH: apt-get install --no-install-recommends "
                "swift swift-proxy swift-object swift-account swift-container memcached"
            )
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="s3result-swift-") as tmp:
        os.makedirs(os.path.join(tmp, "srv", "sdb1"))
        with open(os.path.join(tmp, "swift.conf"), "w") as f:
            f.write(
                "[swift-hash]\nswift_hash_path_suffix = s3result\nswift_hash_path_prefix = s3result\n"
                "[storage-policy:0]\nname = gold\ndefault = yes\n"
            )
        ports = {kind: free_port() for kind in ("account", "container", "object", "proxy", "memcached")}

        def start(name: str, *args: str) -> subprocess.Popen[bytes]:
            log = open(os.path.join(tmp, f"{name}.log"), "wb")  # noqa: SIM115 - closed with the process
            proc = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT)
            log.close()
            procs.append(proc)
            return proc

        try:
            for kind in ("account", "container", "object"):
                builder = os.path.join(tmp, f"{kind}.builder")
                subprocess.run(
                    ["swift-ring-builder", builder, "create", "10", "1", "1"], check=True, capture_output=True
                )
                subprocess.run(
                    ["swift-ring-builder", builder, "add", f"r1z1-127.0.0.1:{ports[kind]}/sdb1", "100"],
                    check=True,
                    capture_output=True,
                )
                subprocess.run(["swift-ring-builder", builder, "rebalance"], capture_output=True)
                conf = os.path.join(tmp, f"{kind}-server.conf")
                with open(conf, "w") as f:
                    f.write(_SWIFT_SERVER_CONF.format(port=ports[kind], tmp=tmp, kind=kind))
                start(kind, f"swift-{kind}-server", conf)
            start("memcached", "memcached", "-u", "root", "-l", "127.0.0.1", "-p", str(ports["memcached"]), "-U", "0")
            proxy_conf = os.path.join(tmp, "proxy-server.conf")
            with open(proxy_conf, "w") as f:
                f.write(_SWIFT_PROXY_CONF.format(port=ports["proxy"], tmp=tmp, memcached_port=ports["memcached"]))
            proxy = start("proxy", "swift-proxy-server", proxy_conf)
            wait_http("127.0.0.1", ports["proxy"], proxy, timeout, os.path.join(tmp, "proxy.log"))
            target = Target("swift", f"http://127.0.0.1:{ports['proxy']}", bucket, "s3result:tester", "swift-secret")
            deadline = time.monotonic() + timeout
            while True:  # the account and container servers may still be starting
                try:
                    create_bucket(target.endpoint, bucket, target.access_key, target.secret_key)
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            _wait_writable(target, deadline)  # and the object server too
            yield target
        finally:
            stop_all(procs)
