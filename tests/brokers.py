"""The brokers users deploy, started by the tests on 127.0.0.1 free ports and stopped at the end.

- ``RedisServer``: Debian's ``redis-server``, no persistence, bound to 127.0.0.1.
- ``RabbitMQServer``: Debian's ``rabbitmq-server`` as a private node: its own data and log folders,
  node name, AMQP and distribution ports, and its own ``epmd`` on a free loopback port, so it
  neither meets nor disturbs a system RabbitMQ. Slow to start (seconds): start it once per session.
- ``SqsStack``: the all-AWS stack on one moto server (auth on): S3 for results and SQS for the broker
  through kombu's SQS transport, both reached with one IAM user whose policy is the README's.

A broker that cannot start raises: the tests that need it fail, they are never skipped silently.
Each broker gives a Celery ``broker_url`` and ``broker_transport_options``; ``namespace`` keeps the
queues of one worker set apart from another's on the same server (Redis database, SQS queue prefix).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from s3result.s3 import sigv4
from s3result.testing.store import MotoServer, free_port

__all__ = ["Broker", "RabbitMQServer", "RedisServer", "SqsStack", "Tuned", "aws_stack_policy"]

_RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # not /usr/sbin's wrapper: it switches user
_B = TypeVar("_B", bound="Broker")


class Broker:
    """What a Celery app needs to reach one broker."""

    name = ""

    def url(self, namespace: int = 0) -> str:
        raise NotImplementedError

    def transport_options(self, namespace: int = 0) -> dict[str, Any]:
        return {}

    def __enter__(self: _B) -> _B:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str, log: Path) -> None:
    """Wait until something accepts connections on 127.0.0.1:port, or fail with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} not listening on 127.0.0.1:{port} after {timeout}s: {_tail(log)}")


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return "(no log)"


def _stop_group(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    """Terminate a process started in its own session, and its children; kill it if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class RedisServer(Broker):
    """Debian's redis-server on a free loopback port, in memory only."""

    name = "redis"

    def __init__(self) -> None:
        self.port = 0
        self._dir = Path(tempfile.mkdtemp(prefix="s3result-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, namespace: int = 0) -> str:
        # Redis has 16 databases: each namespace gets its own, so queues never mix.
        return f"redis://127.0.0.1:{self.port}/{namespace % 16}"

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(exe):
            raise RuntimeError("redis-server is not installed: apt-get install redis-server (scripts/test does)")
        log = self._dir / "redis.log"
        for _ in range(3):
            self.port = free_port()
            args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            args += ["--dir", str(self._dir), "--logfile", str(log), "--daemonize", "no"]
            self._proc = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                _wait_port(self.port, self._proc, 30, "redis-server", log)
                return
            except RuntimeError:
                _stop_group(self._proc)
                self._proc = None
        raise RuntimeError(f"redis-server did not start: {_tail(log)}")

    def kill(self) -> None:
        """SIGKILL the server (a crash: clients see their connections reset); ``revive`` restarts it."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def revive(self) -> None:
        """Start the server again on the same port, empty (no persistence), after ``kill``."""
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        log = self._dir / "redis.log"
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self._dir), "--logfile", str(log), "--daemonize", "no"]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self._proc, 30, "redis-server", log)

    def stop(self) -> None:
        _stop_group(self._proc)
        self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)


class RabbitMQServer(Broker):
    """A private RabbitMQ node and its own epmd, all on loopback, under a temporary folder."""

    name = "rabbitmq"

    def __init__(self, *, start_timeout: float = 120.0) -> None:
        self.port = 0
        self.start_seconds = 0.0
        self._dir = Path(tempfile.mkdtemp(prefix="s3result-rabbitmq-"))
        self._timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = {}

    def url(self, namespace: int = 0) -> str:
        # guest/guest is allowed from loopback only, which is all this node listens on.
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        if not os.path.exists(_RABBITMQ_SERVER) or not shutil.which("epmd"):
            raise RuntimeError("rabbitmq-server is not installed: apt-get install rabbitmq-server (scripts/test does)")
        started = time.monotonic()
        try:
            self._start()
        except RuntimeError:  # one more time on fresh ports: another process may have taken one
            self._start()
        self.start_seconds = time.monotonic() - started

    def _start(self) -> None:
        d = self._dir
        epmd_port, self.port, dist_port = free_port(), free_port(), free_port()
        (d / "enabled_plugins").write_text("[].\n")  # no management plugin: faster, no extra port
        (d / "rabbitmq.conf").write_text("")
        (d / "rabbitmq-env.conf").write_text("")
        env = dict(
            os.environ,
            HOME=str(d),  # the Erlang cookie lives here
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(epmd_port),
            RABBITMQ_NODENAME=f"s3result{self.port}@localhost",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(dist_port),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_PID_FILE=str(d / "rabbitmq.pid"),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            # The distribution listener binds every interface unless told otherwise.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        self._env = env
        log = d / "stdout.log"
        try:
            with open(log, "ab") as out:
                self._epmd = subprocess.Popen(
                    ["epmd", "-address", "127.0.0.1", "-port", str(epmd_port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
                _wait_port(epmd_port, self._epmd, 20, "epmd", log)
                self._proc = subprocess.Popen(
                    [_RABBITMQ_SERVER], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=d, start_new_session=True
                )
            _wait_port(self.port, self._proc, self._timeout, "rabbitmq-server", log)
            self._wait_amqp()
        except BaseException:
            self._stop_processes()
            raise

    def _wait_amqp(self) -> None:
        """The AMQP port opens late in the boot; one real handshake proves the broker serves."""
        from kombu import Connection

        with Connection(self.url(), connect_timeout=10) as conn:
            conn.ensure_connection(max_retries=20, interval_start=0.2, interval_step=0.2, interval_max=1)

    def queues(self) -> dict[str, int]:
        """Every queue of the node and its message count (``rabbitmqctl``: an Erlang VM, seconds)."""
        out = subprocess.run(
            [
                "/usr/lib/rabbitmq/bin/rabbitmqctl",
                "-q",
                "-n",
                self._env["RABBITMQ_NODENAME"],
                "list_queues",
                "name",
                "messages",
            ],
            env=self._env,
            capture_output=True,
            timeout=120,
            check=True,
        ).stdout.decode()
        rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
        return {name: int(count) for name, count in rows if count.isdigit()}

    def _stop_processes(self) -> None:
        _stop_group(self._proc, timeout=30)
        self._proc = None
        _stop_group(self._epmd)
        self._epmd = None

    def stop(self) -> None:
        self._stop_processes()
        shutil.rmtree(self._dir, ignore_errors=True)


ACCOUNT = "123456789012"  # moto's default account id
REGION = "us-east-1"


def aws_stack_policy(
    *, bucket: str, prefix: str, queue_prefix: str, region: str = REGION, account: str = ACCOUNT
) -> str:
    """The README's IAM policy for the all-AWS stack: SQS queues by name prefix, S3 results by key prefix."""
    queues = f"arn:aws:sqs:{region}:{account}:{queue_prefix}*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CeleryBrokerQueues",
                    "Effect": "Allow",
                    "Action": [
                        "sqs:CreateQueue",
                        "sqs:GetQueueUrl",
                        "sqs:GetQueueAttributes",
                        "sqs:SetQueueAttributes",
                        "sqs:SendMessage",
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:PurgeQueue",
                    ],
                    "Resource": queues,
                },
                {"Sid": "CeleryBrokerListQueues", "Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"},
                {
                    "Sid": "ResultObjects",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": f"arn:aws:s3:::{bucket}/{prefix}/*",
                },
                {
                    "Sid": "ResultMissingIs404",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": f"arn:aws:s3:::{bucket}",
                },
            ],
        }
    )


class SqsStack(Broker):
    """SQS and S3 on one moto server (auth on), and a user allowed exactly the README's policy."""

    name = "sqs"
    queue_prefix = "s3result-e2e-"
    prefix = "aws"

    def __init__(self) -> None:
        self.moto = MotoServer(bucket="s3result-aws")
        self.access_key = ""
        self.secret_key = ""
        #: The queues' visibility timeout: a task running longer is delivered again.
        self.visibility_timeout = 30

    @property
    def port(self) -> int:
        return self.moto.port

    def url(self, namespace: int = 0) -> str:
        return f"sqs://{quote(self.access_key, safe='')}:{quote(self.secret_key, safe='')}@127.0.0.1:{self.moto.port}"

    def transport_options(self, namespace: int = 0) -> dict[str, Any]:
        return {
            "region": REGION,
            "is_secure": False,
            "queue_name_prefix": f"{self.queue_prefix}{namespace}-",
            "visibility_timeout": self.visibility_timeout,
            # Long polls of 1 s: a message is received as soon as it is sent, and an idle
            # worker sends one ReceiveMessage a second.
            "wait_time_seconds": 1,
            "polling_interval": 0.1,
        }

    def backend_url(self, prefix: str | None = None, **query: str) -> str:
        """The result backend on the same moto, with the same user's key."""
        q = f"?{urlencode(query)}" if query else ""
        return (
            f"s3result+http://{self.access_key}:{self.secret_key}@127.0.0.1:{self.moto.port}"
            f"/{self.moto.bucket}/{prefix or self.prefix}{q}"
        )

    def start(self) -> None:
        self.moto.start()
        try:
            self._add_user()
        except BaseException:
            self.moto.stop()
            raise

    def _add_user(self) -> None:
        """Auth off for a moment (this server is ours alone), add the user, auth on again."""
        self._raw("POST", "/moto-api/reset-auth", b"inf")
        try:
            policy = aws_stack_policy(bucket=self.moto.bucket, prefix=self.prefix, queue_prefix=self.queue_prefix)
            # moto authorises CreateQueue against "*" (it knows no ARN for a queue that does not exist
            # yet); AWS authorises it against the new queue's ARN, which the README's policy covers.
            doc = json.loads(policy)
            doc["Statement"].append(
                {"Sid": "MotoCreateQueue", "Effect": "Allow", "Action": "sqs:CreateQueue", "Resource": "*"}
            )
            policy = json.dumps(doc)
            self._iam(Action="CreateUser", UserName="celery-aws")
            self._iam(Action="PutUserPolicy", UserName="celery-aws", PolicyName="celery-aws", PolicyDocument=policy)
            data = self._iam(Action="CreateAccessKey", UserName="celery-aws")
        finally:
            self._raw("POST", "/moto-api/reset-auth", b"0")
        key = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", data)
        secret = re.search(rb"<SecretAccessKey>([^<]+)</SecretAccessKey>", data)
        if not key or not secret:
            raise RuntimeError("moto: CreateAccessKey returned no key")
        self.access_key, self.secret_key = key.group(1).decode(), secret.group(1).decode()

    def _raw(self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.moto.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise RuntimeError(f"moto {method} {path}: {resp.status} {data[:300]!r}")
        return data

    def _iam(self, **params: str) -> bytes:
        body = urlencode({**params, "Version": "2010-05-08"}).encode()
        headers = [("content-type", "application/x-www-form-urlencoded")]
        signed = sigv4.sign_s3(
            method="POST",
            host=f"127.0.0.1:{self.moto.port}",
            path="/",
            headers=headers,
            body_sha256=sigv4.payload_hash(body),
            access_key="AKIDBOOTSTRAP0000000",
            secret_key="bootstrap",
            region=REGION,
            now=time.time(),
            service="iam",
        )
        return self._raw("POST", "/", body, dict(headers + signed))

    def stop(self) -> None:
        self.moto.stop()


class Tuned(Broker):
    """The same broker with some transport options changed (e.g. a short visibility timeout)."""

    def __init__(self, base: Broker, **options: Any) -> None:
        self.base = base
        self.name = base.name
        self.options = options

    def url(self, namespace: int = 0) -> str:
        return self.base.url(namespace)

    def transport_options(self, namespace: int = 0) -> dict[str, Any]:
        return {**self.base.transport_options(namespace), **self.options}

    def start(self) -> None:  # the base broker's owner starts and stops it
        pass

    def stop(self) -> None:
        pass
