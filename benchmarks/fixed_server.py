"""nginx as a fixed-response S3 stand-in, so the server's own cost is out of the client figures.

Keys ending in ``-done`` answer GET/HEAD with a stored SUCCESS result (its MD5 ETag and its
CRC32 in ``x-amz-meta-s3result-crc32``, as a store returns what s3result wrote); every other key
answers GET/HEAD with S3's 404 NoSuchKey; PUT answers 201 with an ETag (not 200: nginx's
not-modified filter would turn a 200 into 304 for ``If-None-Match: *``); DELETE 204. nginx
checks nothing, which is the point: only the client's CPU is measured.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import zlib

from s3result.testing.store import free_port

DONE_BODY = (
    '{"status": "SUCCESS", "result": 42, "traceback": null, "children": [], '
    '"date_done": "2026-11-24T00:00:00.000000+00:00", "task_id": "bench-done"}'
)
DONE_ETAG = hashlib.md5(DONE_BODY.encode()).hexdigest()
# The checksum every result carries (s3result/integrity.py), returned as a real store returns it.
DONE_CRC32 = f"{zlib.crc32(DONE_BODY.encode()):08x}"
_MISSING = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"

_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_max_body_size 100m;
    default_type application/xml;
    server {{
        listen 127.0.0.1:{port};
        location ~ -done$ {{
            if ($request_method = PUT) {{ add_header ETag '"{etag}"' always; return 201; }}
            if ($request_method = DELETE) {{ return 204; }}
            add_header ETag '"{etag}"' always;
            add_header x-amz-meta-s3result-crc32 '{crc}' always;
            default_type application/json;
            return 200 '{done}';
        }}
        location / {{
            if ($request_method = PUT) {{ add_header ETag '"{etag}"' always; return 201; }}
            if ($request_method = DELETE) {{ return 204; }}
            return 404 "{missing}";
        }}
    }}
}}
"""


class FixedServer:
    """Run nginx on 127.0.0.1 with the config above, optionally pinned to one CPU."""

    def __init__(self, cpu: int | None = 1) -> None:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(exe):
            raise RuntimeError("nginx is not installed: apt-get install --no-install-recommends nginx")
        self.tmp = tempfile.mkdtemp(prefix="s3result-nginx-")
        self.port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                _CONF.format(
                    tmp=self.tmp,
                    port=self.port,
                    etag=DONE_ETAG,
                    crc=DONE_CRC32,
                    done=DONE_BODY.replace("'", "\\'"),
                    missing=_MISSING.replace('"', '\\"'),
                )
            )
        cmd = [exe, "-c", conf, "-p", self.tmp]
        if cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from conformance.servers import wait_http

        try:
            wait_http("127.0.0.1", self.port, self.proc, 10, os.path.join(self.tmp, "error.log"))
        except BaseException:
            self.close()
            raise

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests_logged(self) -> int:
        with open(os.path.join(self.tmp, "access.log"), "rb") as f:
            return sum(1 for _ in f)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        time.sleep(0.05)
        shutil.rmtree(self.tmp, ignore_errors=True)
