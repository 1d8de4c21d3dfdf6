"""One test per (check, target): the store behaves as S3, or as its documented divergence.

The checks are s3result's own (``s3result.conformance``, what ``s3result conformance URL`` runs);
this suite pins each store's exact answers, and that the command's verdict agrees.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from s3result.conformance.checks import CHECKS, EXPECTED, Ctx
from s3result.conformance.verdicts import MEANINGS
from s3result.results import config
from s3result.s3.client import S3Client

from .divergences import DIVERGENCES
from .servers import Target


@pytest.fixture(scope="session")
def preflight(target: Target) -> S3Client:
    """One PUT/GET/DELETE first: a target we cannot even write to fails with the reason."""
    client = S3Client(config.build(url=target.url("conformance"), environ={}).s3)
    key = f"conformance/preflight-{uuid.uuid4().hex}"
    try:
        client.put(key, b"preflight")
        assert client.get(key).body == b"preflight"
        client.delete(key)
    except Exception as exc:
        pytest.fail(f"preflight against {target!r} failed: {exc}; check the endpoint, bucket and credentials")
    return client


@pytest.mark.parametrize("check_name", list(CHECKS))
def test_check(
    check_name: str, target: Target, preflight: S3Client, record_property: Callable[[str, Any], None]
) -> None:
    ctx = Ctx(client=preflight, prefix=f"conformance/{check_name}/{uuid.uuid4().hex[:8]}")
    observed = CHECKS[check_name](ctx)
    documented = DIVERGENCES.get((target.name, check_name))
    if documented is not None:
        expected, why = documented
        assert observed == expected, (
            f"{target.name} no longer diverges as documented ({why}): expected {expected!r}, observed {observed!r}"
        )
        verdict = "fail" if MEANINGS[check_name].fails(observed) else "differs"
        record_property("cell", f"divergence ({verdict})")
    else:
        assert observed == EXPECTED[check_name], (
            f"{target.name}: S3 answers {EXPECTED[check_name]!r}, this store {observed!r}"
        )
        record_property("cell", "pass")
