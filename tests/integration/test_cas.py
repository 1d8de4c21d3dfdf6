"""A store that refuses every If-Match (Ceph RGW 16.2 told ``conditional_writes=etag``, which
skips the probe that would catch it) is named as such, with the fix, at the first update.

Unit tests of the loop itself: tests/test_cas.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from celery import Celery, states

from conformance.servers import Target
from s3result.backend import S3Backend
from s3result.errors import NotImplementedByStore

from .test_chord_cases import Chord, make_app


def _backend(url: str) -> S3Backend:
    app = Celery("cas", set_as_current=False)
    app.conf.result_backend = url
    backend = app.backend
    assert isinstance(backend, S3Backend)
    return backend


def _names_the_fix(exc: Any) -> None:
    text = str(exc)
    assert "does not honour If-Match" in text and "conditional_writes=probe" in text, text
    assert "concurrent writers" not in text, text


def test_a_later_state_on_a_store_that_refuses_if_match(ceph_target: Target) -> None:
    backend = _backend(ceph_target.url("cas-state", conditional_writes="etag"))
    task_id = uuid.uuid4().hex
    backend.store_result(task_id, None, states.STARTED)  # If-None-Match: * works there
    with pytest.raises(NotImplementedByStore) as raised:
        backend.store_result(task_id, 42, states.SUCCESS)
    _names_the_fix(raised.value)


def test_a_native_chord_on_a_store_that_refuses_if_match(ceph_target: Target) -> None:
    """The producer records the chord's size with If-Match: ``apply_async`` raises at once, naming
    the store's refusal and ``conditional_writes``, and the body holds the same error."""
    producer = make_app(ceph_target.url("cas-chord"), conditional_writes="etag")
    producer.conf.result_backend_always_retry = False
    with pytest.raises(NotImplementedByStore) as raised:
        Chord(producer, 10, f"g-cas-{uuid.uuid4().hex[:8]}")
    _names_the_fix(raised.value)
