"""``s3result check`` against an endpoint that is wrong: the fix is the endpoint's, never an IAM
grant (review of issue 14; servers on 127.0.0.1 started by the test)."""

from __future__ import annotations

import json

import pytest

from s3result.cli import main
from s3result.testing.store import MotoServer, free_port


@pytest.mark.parametrize(
    ("mistake", "fix"),
    [("wrong port", "endpoint_url, and that the store is running"), ("https to http", "use s3result+http://")],
)
def test_check_gives_the_endpoint_fix_not_a_permission(
    moto_server: MotoServer, capsys: pytest.CaptureFixture[str], mistake: str, fix: str
) -> None:
    url = moto_server.url("cli")
    url = {
        "wrong port": url.replace(f":{moto_server.port}/", f":{free_port()}/"),
        "https to http": url.replace("s3result+http://", "s3result+https://"),
    }[mistake]
    assert main(["check", "--json", "--url", url]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = [c for c in report["checks"] if not c["ok"] and not c.get("warning")]
    assert failed and failed[0]["name"] == "network", failed
    for check in failed:
        assert "grant" not in check.get("fix", ""), check
    assert fix in failed[0]["fix"], failed[0]
    assert moto_server.secret_key not in json.dumps(report)
