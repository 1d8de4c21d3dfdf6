"""Cold start where the store is 20 ms away, as AWS is: s3result against Celery's S3 backend.

    python -m benchmarks.cold [--rounds 7] [--latency 0.02]   # prints a Markdown table

A new process imports Celery, builds the backend and stores one result (``benchmarks.run``'s
``_COLD`` script, a new task id each time), in a clean venv per client (celery and the client only, pip-installed and
compiled, as a worker image holds them). The store is moto server (auth on: it checks
signatures, and honours conditional writes, so s3result's probe passes) behind a relay that
holds every request for ``--latency`` seconds (``FaultProxy``'s latency fault) and a
``CountingProxy`` that counts the requests each start sends. Three starts take turns, round
after round: Celery's S3 backend (boto3); s3result as the first process on a prefix (no
verdict there: it probes the store and stores the verdict); s3result as a later process
(the verdict there: one GET). Each figure is the median of the rounds, with the min-max range.

``benchmarks.run`` measures the same start against a local fixed-response server, with no
latency, which hides what each request costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from s3result.testing.faults import FaultProxy
from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer

from .run import _COLD, ROOT, _clean_venv

# A new task id per start: a second write of one id would read the first before refusing it.
_SCRIPT = _COLD.replace("'cold-start'", "{task!r}")
assert _SCRIPT != _COLD

CELERY_S3 = "celery s3 (boto3)"
FIRST = "s3result, first on a prefix (probes)"
LATER = "s3result, later (verdict stored)"


def _confs(moto: MotoServer, port: int, fresh: str) -> dict[str, dict[str, Any]]:
    endpoint = f"http://127.0.0.1:{port}"
    secret = moto.secret_key.replace("/", "%2F").replace("+", "%2B")
    base = f"s3result+http://{moto.access_key}:{secret}@127.0.0.1:{port}/{moto.bucket}"
    return {
        CELERY_S3: {
            "result_backend": "s3://",
            "s3_bucket": moto.bucket,
            "s3_base_path": "celery-s3/",
            "s3_endpoint_url": endpoint,
            "s3_region": "us-east-1",
            "s3_access_key_id": moto.access_key,
            "s3_secret_access_key": moto.secret_key,
        },
        FIRST: {"result_backend": f"{base}/{fresh}"},
        LATER: {"result_backend": f"{base}/later"},
    }


def measure(rounds: int, latency: float) -> dict[str, dict[str, list[float]]]:
    """Wall ms, inner ms and requests per start, for each of the three starts, taking turns."""
    out: dict[str, dict[str, list[float]]] = {
        name: {"wall ms": [], "import+first store ms": [], "requests": []} for name in (CELERY_S3, FIRST, LATER)
    }
    celery_pin = f"celery=={version('celery')}"
    with tempfile.TemporaryDirectory() as tmp, MotoServer() as moto:
        pythons = {
            "s3result": _clean_venv(Path(tmp) / "s3result", celery_pin, str(ROOT)),
            CELERY_S3: _clean_venv(Path(tmp) / "celery-s3", celery_pin, f"boto3=={version('boto3')}"),
        }
        counting = CountingProxy("127.0.0.1", moto.port)
        relay = FaultProxy("127.0.0.1", counting.port, latency=latency)
        relay.set_faults(latency=1.0)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "COVERAGE", "AWS_"))}

        def start(name: str, conf: dict[str, Any]) -> tuple[float, float, int]:
            python = pythons[CELERY_S3 if name == CELERY_S3 else "s3result"]
            before = counting.total
            began = time.perf_counter()
            proc = subprocess.run(
                [python, "-c", _SCRIPT.format(conf=repr(conf), task=str(uuid.uuid4()))],
                capture_output=True,
                env=env,
                cwd=tmp,
                check=False,
            )
            wall = (time.perf_counter() - began) * 1000
            if proc.returncode != 0:
                raise RuntimeError(f"cold start of {name} failed: {proc.stderr.decode()[-800:]}")
            return wall, float(proc.stdout.split()[0]) * 1000, counting.total - before

        try:
            for _ in range(2):  # warm the page cache, and store the later starts' verdict; not counted
                for name, conf in _confs(moto, relay.port, f"warm-{uuid.uuid4().hex[:8]}").items():
                    start(name, conf)
            for _ in range(rounds):
                for name, conf in _confs(moto, relay.port, f"fresh-{uuid.uuid4().hex[:8]}").items():
                    wall, inner, sent = start(name, conf)
                    out[name]["wall ms"].append(wall)
                    out[name]["import+first store ms"].append(inner)
                    out[name]["requests"].append(sent)
        finally:
            relay.close()
            counting.close()
    return out


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def report(results: dict[str, dict[str, list[float]]], rounds: int, latency: float, command: str) -> str:
    """The RESULTS.md section."""
    celery = statistics.median(results[CELERY_S3]["wall ms"])
    lines = [
        "",
        f"## Cold start at {latency * 1000:.0f} ms per request (`{command}`)",
        "",
        "New process to first result stored, each client in a clean venv; moto server (auth on) behind",
        f"a relay holding each request {latency * 1000:.0f} ms; {rounds} rounds, the three starts taking turns,",
        "after 2 unmeasured rounds. Requests counted at the wire, per start.",
        "",
        "| start | wall ms | import + first store ms | requests | wall / Celery S3's |",
        "|---|---|---|---|---|",
    ]
    for name, row in results.items():
        ratio = statistics.median(row["wall ms"]) / celery
        requests = f"{statistics.median(row['requests']):.0f}"
        lines.append(
            f"| {name} | {_fmt(row['wall ms'])} | {_fmt(row['import+first store ms'])} | {requests} | {ratio:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds each request is held (0.02)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.cold" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    print(report(measure(args.rounds, args.latency), args.rounds, args.latency, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
