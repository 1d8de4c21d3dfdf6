"""Operating s3result against real servers: errors that name the user's own request, and the
probe's clean-up that never masks them. (The CLI's own tests are in test_cli.py and test_check_network.py.)"""

from __future__ import annotations

import uuid

import pytest
from celery import Celery, states

from s3result.errors import AccessDenied
from s3result.testing.store import MotoServer


def test_wrong_secret_names_the_write_the_user_asked_for(moto_server: MotoServer) -> None:
    app = Celery("wrong-secret", set_as_current=False)
    app.conf.result_backend = moto_server.url("wrongsecret").replace(moto_server.secret_key, "not-the-secret")
    tid = str(uuid.uuid4())
    with pytest.raises(AccessDenied) as exc:
        app.backend.store_result(tid, 1, states.SUCCESS)
    text = str(exc.value)
    assert f"S3 PUT 'wrongsecret/celery-task-meta-{tid}' failed" in text and "SignatureDoesNotMatch" in text
    assert "s3result-probe" not in text and "DELETE" not in text
    assert "in the result_backend URL" in text and "s3_secret_access_key" not in text
    assert "not-the-secret" not in text


def test_probe_clean_up_failure_is_logged_not_raised(moto_server: MotoServer) -> None:
    """Credentials that may write but not delete: the verdict stands, the key is left to the lifecycle rule."""
    from s3result.results import config
    from s3result.results.precondition import probe
    from s3result.s3.client import S3Client

    client = S3Client(config.build(url=moto_server.url("nodelete"), environ={}).s3)
    real_delete = client.delete

    def refuse(key: str, deadline: float | None = None) -> None:
        raise AccessDenied(status=403, code="AccessDenied", key=key, method="DELETE")

    client.delete = refuse  # type: ignore[method-assign]
    try:
        assert probe(client, "nodelete").ok
    finally:
        client.delete = real_delete  # type: ignore[method-assign]
