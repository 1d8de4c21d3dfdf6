"""``s3result conformance URL``, run as a user runs it, against real stores.

``s3result serve`` (moto, auth on) holds every semantic s3result relies on: exit 0, every check
printed, moto's missing payload-hash and clock checks reported as "differs". nanio ignores
``If-None-Match``: exit 1, naming conditional writes. The checks themselves: conformance/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from s3result.conformance.checks import CHECKS
from s3result.testing.store import free_port

from .test_serve import _exports, _start, _stop

BIN = Path(sys.executable).parent


def _conformance(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [str(BIN / "s3result"), "conformance", *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def test_against_serve_exits_0_and_prints_every_check(tmp_path: Path) -> None:
    port = free_port()
    proc, banner = _start([str(BIN / "s3result"), "serve", "--port", str(port)])
    try:
        # As the README says: the exports, then the URL without keys (credentials from the environment).
        env = dict(os.environ, **_exports(banner))
        done = _conformance("s3result://my-bucket/celery", env=env, cwd=tmp_path)
        url = re.search(r'^result_backend = "(s3result\+http://[^"]+)"$', banner, re.M)
        assert url, banner
        as_json = _conformance(url.group(1), "--json", cwd=tmp_path)
    finally:
        _stop(proc, signal.SIGINT)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in CHECKS:
        assert any(re.match(rf"  (pass|differs) +{name}\b", line) for line in lines), (name, done.stdout)
    differs = [line for line in lines if line.startswith("  differs")]
    assert any("tampered_body" in line and "does not verify payload hashes" in line for line in differs), differs
    assert any("clock_20_minutes_off" in line for line in differs), differs
    assert "Every semantic s3result relies on holds" in lines[-1], lines[-1]
    assert as_json.returncode == 0, as_json.stderr
    doc: dict[str, Any] = json.loads(as_json.stdout)
    assert doc["ok"] is True and [c["check"] for c in doc["checks"]] == list(CHECKS)
    assert list(tmp_path.iterdir()) == []  # no file written unless asked


def test_against_a_store_ignoring_if_none_match_exits_1_naming_conditional_writes(
    nanio_target: Any, tmp_path: Path
) -> None:
    report = tmp_path / "nanio.md"
    done = _conformance(nanio_target.url("conformance-command"), "--markdown", "--output", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    verdict = done.stderr.strip().splitlines()[-1]
    assert "First that does not hold: conditional writes (if_none_match_on_existing_key)" in verdict, verdict
    table = report.read_text()
    assert "| if_none_match_on_existing_key | fail |" in table, table
    assert "| tampered_body | differs |" in table, table  # nanio does not check payload hashes either


def test_without_a_url_one_line_says_how() -> None:
    done = _conformance(env={k: v for k, v in os.environ.items() if k != "S3RESULT_URL"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "s3result conformance s3result+https://HOST/BUCKET/PREFIX" in done.stderr
