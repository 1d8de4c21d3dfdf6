"""Target selection, start-up and the matrix report of the conformance suite.

Targets come from ``--target moto,ceph,nanio`` or ``S3RESULT_CONFORMANCE_TARGETS``
(default: moto). A requested target that cannot start fails the run with the reason; none
is skipped silently. The matrix (check x target) is printed at the end, and written as
Markdown only where ``--matrix PATH`` asks (``--matrix conformance/MATRIX.md`` refreshes the
tracked one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import Target, ceph_target, create_bucket, moto_target, nanio_target, stop_all, swift_target, wait_http

KNOWN = ("moto", "ceph", "nanio", "minio", "swift", "endpoint")
_results: dict[tuple[str, str], str] = {}
_stack = contextlib.ExitStack()
_started: dict[str, Target] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("s3result conformance")
    group.addoption("--target", default=None, help=f"comma-separated targets: {', '.join(KNOWN)}")
    group.addoption("--matrix", default=None, help="write the matrix as Markdown to this file (default: print only)")


def _targets(config: pytest.Config) -> list[str]:
    raw = config.getoption("--target") or os.environ.get("S3RESULT_CONFORMANCE_TARGETS") or "moto"
    names = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = [t for t in names if t not in KNOWN]
    if unknown:
        raise pytest.UsageError(f"unknown conformance target(s) {unknown}; known: {', '.join(KNOWN)}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target_name" in metafunc.fixturenames:
        metafunc.parametrize("target_name", _targets(metafunc.config), scope="session")


@contextlib.contextmanager
def _minio_target(bucket: str) -> Iterator[Target]:
    endpoint = os.environ.get("S3RESULT_MINIO_ENDPOINT")
    if endpoint:
        target = Target(
            "minio",
            endpoint,
            os.environ.get("S3RESULT_MINIO_BUCKET", bucket),
            os.environ["S3RESULT_MINIO_ACCESS_KEY"],
            os.environ["S3RESULT_MINIO_SECRET_KEY"],
        )
        create_bucket(target.endpoint, target.bucket, target.access_key, target.secret_key)
        yield target
        return
    exe = shutil.which("minio")
    if exe is None:
        raise RuntimeError("no minio binary on PATH and S3RESULT_MINIO_ENDPOINT unset: cannot run the minio target")
    from s3result.testing.store import free_port

    with tempfile.TemporaryDirectory(prefix="s3result-minio-") as tmp:
        port = free_port()
        env = dict(os.environ, MINIO_ROOT_USER="minioadmin", MINIO_ROOT_PASSWORD="minio-secret-key")
        log = os.path.join(tmp, "minio.log")
        with open(log, "wb") as logf:
            proc = subprocess.Popen(
                [
                    exe,
                    "server",
                    os.path.join(tmp, "data"),
                    "--address",
                    f"127.0.0.1:{port}",
                    "--console-address",
                    "127.0.0.1:0",
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            wait_http("127.0.0.1", port, proc, 60, log)
            target = Target("minio", f"http://127.0.0.1:{port}", bucket, "minioadmin", "minio-secret-key")
            create_bucket(target.endpoint, bucket, target.access_key, target.secret_key)
            yield target
        finally:
            stop_all([proc])


@contextlib.contextmanager
def _endpoint_target(bucket: str) -> Iterator[Target]:
    env = os.environ
    missing = [
        f"S3RESULT_CONFORMANCE_{n}"
        for n in ("ENDPOINT", "BUCKET", "ACCESS_KEY", "SECRET_KEY")
        if not env.get(f"S3RESULT_CONFORMANCE_{n}")
    ]
    if missing:
        raise RuntimeError(f"the endpoint target needs {', '.join(missing)}")
    yield Target(
        "endpoint",
        env["S3RESULT_CONFORMANCE_ENDPOINT"],
        env["S3RESULT_CONFORMANCE_BUCKET"],
        env["S3RESULT_CONFORMANCE_ACCESS_KEY"],
        env["S3RESULT_CONFORMANCE_SECRET_KEY"],
        env.get("S3RESULT_CONFORMANCE_REGION", "us-east-1"),
    )


_LAUNCHERS: dict[str, Any] = {
    "moto": moto_target,
    "ceph": ceph_target,
    "nanio": nanio_target,
    "minio": _minio_target,
    "swift": swift_target,
    "endpoint": _endpoint_target,
}


@pytest.fixture(scope="session")
def target(target_name: str) -> Target:
    """The running target; started once per session, stopped at the end."""
    if target_name not in _started:
        _started[target_name] = _stack.enter_context(_LAUNCHERS[target_name](bucket="conformance"))
    return _started[target_name]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _stack.close()
    if not _results:
        return
    targets = [t for t in _targets(session.config) if any(k[1] == t for k in _results)]
    checks = sorted({k[0] for k in _results}, key=_check_order)
    lines = ["| check | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for name in checks:
        lines.append(f"| {name} | " + " | ".join(_results.get((name, t), "") for t in targets) + " |")
    table = "\n".join(lines)
    session.config._s3result_matrix = table  # type: ignore[attr-defined]
    if not session.config.getoption("--matrix"):
        return
    Path(session.config.getoption("--matrix")).write_text(
        "# s3result conformance matrix\n\n"
        "`pass`: behaves as Amazon S3. `divergence`: differs as documented in "
        "conformance/divergences.py (and still does); `(differs)` s3result still works there, `(fail)` a "
        "semantic it relies on does not hold (what `s3result conformance` reports). `FAIL`: differs in a way "
        "nobody documented.\n\n"
        f"{table}\n"
    )


def _check_order(name: str) -> int:
    from s3result.conformance.checks import CHECKS

    return list(CHECKS).index(name) if name in CHECKS else 999


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    table = getattr(config, "_s3result_matrix", None)
    if table:
        terminalreporter.section("s3result conformance matrix")
        terminalreporter.write_line(table)
        if config.getoption("--matrix"):
            terminalreporter.write_line(f"(written to {config.getoption('--matrix')})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    if callspec is None or "check_name" not in callspec.params:
        return
    key = (callspec.params["check_name"], callspec.params["target_name"])
    if report.when == "setup" and report.failed:
        _results[key] = "FAIL (target did not start)"
    elif report.when == "call":
        cell = dict(item.user_properties).get("cell", "pass")
        _results[key] = cell if report.passed else "FAIL"
