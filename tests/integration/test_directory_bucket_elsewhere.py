"""A directory-bucket name (``--x-s3``) on a store that is not Amazon S3: the fix is the name.

The suffix makes any bucket an S3 Express One Zone directory bucket, whose first request is
CreateSession; a store that is not AWS refuses it. The message must name the suffix and the
endpoint, never send the user to grant ``s3:GetObject`` (no object request was ever made), and
never show the secret. Real moto server with auth on; ``check`` and a caller's ``get``.
"""

from __future__ import annotations

import pytest
from celery import Celery

from s3result.cli import main
from s3result.errors import S3Error
from s3result.testing.store import MotoServer

BUCKET = "results--usw2-az1--x-s3"


def _url(moto: MotoServer) -> str:
    return moto.url().replace(f"/{moto.bucket}/", f"/{BUCKET}/", 1)


def test_check_names_the_suffix_not_an_iam_grant(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--url", _url(moto_server)])
    out = capsys.readouterr().out
    assert code == 1, out
    fix = next(line for line in out.splitlines() if line.strip().startswith("fix:"))
    assert "without --x-s3" in fix and moto_server.endpoint in fix, out
    assert fix.index("without --x-s3") < fix.index("s3express:CreateSession"), out  # the likely fix first
    assert "s3:GetObject" not in out and moto_server.secret_key not in out, out


def test_a_callers_get_names_the_suffix(moto_server: MotoServer) -> None:
    app = Celery("dirbucket", set_as_current=False)
    app.conf.result_backend = _url(moto_server)
    with pytest.raises(S3Error) as info:
        app.AsyncResult("some-task").get(timeout=10)
    text = str(info.value)
    assert "without --x-s3" in text and "s3:GetObject" not in text, text
    assert moto_server.secret_key not in text and moto_server.secret_key not in repr(info.value), text
