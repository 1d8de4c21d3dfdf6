"""The benchmark command still runs, and the request counts it reports hold.

Speed is never asserted here (machines are shared and noisy): only that ``python -m
benchmarks.run`` writes its report, and that the counts of S3 requests, which are exact,
are the ones the design promises (one per read, pending poll and first write).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _row(report: str, operation: str) -> list[str]:
    match = re.search(rf"^\| {re.escape(operation)} \| (.+) \|$", report, re.M)
    assert match, f"no row {operation!r} in the report"
    return [cell.strip() for cell in match.group(1).split("|")]


@pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="no nginx on PATH: apt-get install nginx (scripts/test installs it)",
)
def test_benchmark_command_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            *("-n", "30", "--rounds", "1", "--output", str(out)),
            *("--skip-footprint", "--skip-stores", "--skip-cold-start", "--skip-chords", "--skip-waits"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = out.read_text()
    requests = report.split("## Requests per operation", 1)[-1].split("\n## ", 1)[0]
    for heading in ("## Client CPU per operation", "## Requests per operation", "## GroupResult.get()", "## Bars"):
        assert heading in report
    assert _row(requests, "read a finished result") == ["1", "2"]
    assert _row(requests, "poll a pending result") == ["1", "1"]
    assert _row(requests, "first write of a state") == ["1", "2"]
    assert _row(requests, "forget") == ["1", "1"]
    assert _row(requests, "GroupResult.get() of 100 finished") == ["100", "200"]
    assert "requests per read, pending poll, first write == 1: 1.00 -> met" in report


def test_requests_per_state_change_on_moto() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.run import requests_on_moto
    finally:
        sys.path.remove(str(ROOT))
    counts = requests_on_moto()
    ours = {op: row["s3result"] for op, row in counts.items()}
    assert ours == {
        "first write of a state (STARTED)": 1,
        "a state update (STARTED -> SUCCESS)": 1,
        "a late duplicate after SUCCESS (not stored)": 2,
        "read a finished result": 1,
    }
