"""Every result shape, serializer and compression round-trips through a real store (moto).

The oracle is Celery itself: the same input stored through Celery's cache backend with
``memory://`` must read back equal (or fail with the same exception type) through s3result.
What a serializer changes (json turns tuples into lists, say) it changes in both, and the
docs/guarantees.md (Serializers) lists those changes. Examples per property: the ``ci`` profile (60) by default,
``HYPOTHESIS_PROFILE=deep`` for 2,000.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

import pytest
from celery import Celery, states
from celery.app.task import Context
from celery.result import AsyncResult, GroupResult
from hypothesis import given, note
from hypothesis import strategies as st

from s3result.backend import S3Backend
from s3result.errors import InvalidKey
from s3result.testing.store import MotoServer

SERIALIZERS = ["json", "pickle", "msgpack", "yaml"]
COMPRESSIONS: list[str | None] = [None, "gzip", "bzip2", "lzma", "zlib"]
try:
    from kombu.compression import get_encoder

    get_encoder("zstd")  # kombu registers it when compression.zstd / backports.zstd imports
    COMPRESSIONS.append("zstd")
except KeyError:  # pragma: no cover - backports.zstd is in the test extras
    pass

_backends: dict[tuple[str, str | None, bool], tuple[S3Backend, Any]] = {}


def _pair(moto: MotoServer, serializer: str, compression: str | None, extended: bool) -> tuple[S3Backend, Any]:
    """(s3result backend, Celery's in-memory reference) for one configuration, made once.

    Celery's cache backend cannot hold compressed payloads, and compression must not change
    what is read back, so the reference is always uncompressed.
    """
    key = (serializer, compression, extended)
    if key not in _backends:
        made = []
        for url, comp in (
            (moto.url(f"prop/{serializer}-{compression}-{int(extended)}"), compression),
            ("cache+memory://", None),
        ):
            app = Celery("prop", set_as_current=False)
            app.conf.update(
                result_backend=url,
                result_serializer=serializer,
                result_compression=comp,
                result_extended=extended,
                accept_content=SERIALIZERS,
                result_accept_content=SERIALIZERS,
            )
            made.append(app.backend)
        assert isinstance(made[0], S3Backend)
        _backends[key] = (made[0], made[1])
    return _backends[key]


class UserError(Exception):
    """A user's own exception class with arguments."""


class Unpicklable(Exception):
    """An exception whose __init__ takes a keyword-only argument: pickle cannot rebuild it."""

    def __init__(self, *, code: int) -> None:
        super().__init__(f"code {code}")
        self.code = code


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([5e-324, 1.7976931348623157e308, -0.0])
_ints = st.integers() | st.sampled_from([2**63 - 1, -(2**63), 2**64, 10**40])
_scalars = st.none() | st.booleans() | _ints | _floats | _text
_json_like = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=25,
)
_rich_leaves = (
    st.binary(max_size=40)
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.times(timezones=st.none() | st.just(dt.timezone.utc))
    | st.uuids()
    | st.decimals(allow_nan=False, places=4)
)
_values = st.recursive(
    _scalars | _rich_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(_text, inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),
    max_leaves=20,
)
_deep = st.recursive(st.integers(), lambda inner: st.lists(inner, min_size=1, max_size=1), max_leaves=60)
_exceptions = st.one_of(
    st.builds(ValueError, _text),
    st.builds(KeyError, _text),
    st.builds(RuntimeError, _text, _ints),
    st.builds(UserError, _text, st.integers()),
    st.builds(lambda c: Unpicklable(code=c), st.integers()),
)
_task_ids = (
    st.uuids().map(str)
    | st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(list(" /.~%+#?&=")),
        min_size=1,
        max_size=80,
    )
    | st.sampled_from(["..", "a/../b", "./x", "//", "a//b", " lead", "trail "])
    | st.text(min_size=1000, max_size=1100)
)


def _same(a: Any, b: Any) -> bool:
    """Equality that counts NaN as equal to itself and exceptions by type and args."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, BaseException) or isinstance(b, BaseException):
        # Celery rebuilds an exception it cannot import or unpickle as a class it makes on
        # the fly, a new class object each time: compare what the user sees, name and args.
        same_type = (type(a).__module__, type(a).__qualname__) == (type(b).__module__, type(b).__qualname__)
        return same_type and _same(list(a.args), list(b.args))
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _outcome(backend: Any, task_id: str, value: Any, state: str, **kw: Any) -> tuple[str, Any]:
    """('ok', meta without date_done) or ('error', exception type name)."""
    try:
        backend.store_result(task_id, value, state, **kw)
        meta = dict(backend.get_task_meta(task_id, cache=False))
    except Exception as exc:  # noqa: BLE001 - the property compares failures too
        return ("error", type(exc).__name__)
    meta.pop("date_done", None)
    if state in states.EXCEPTION_STATES and meta.get("result") is not None:
        meta["result"] = backend.exception_to_python(meta["result"])
    return ("ok", meta)


def _check(s3: S3Backend, ref: Any, value: Any, state: str, **kw: Any) -> None:
    task_id = str(uuid.uuid4())
    ours = _outcome(s3, task_id, value, state, **kw)
    theirs = _outcome(ref, task_id, value, state, **kw)
    note(f"ours={ours!r}\ntheirs={theirs!r}")
    assert ours[0] == theirs[0]
    assert _same(ours[1], theirs[1])
    if ours[0] == "ok" and s3.compression:
        raw = s3.get(s3.get_key_for_task(task_id))
        assert raw is not None and raw.startswith(b"\x00celery-compressed")


_configs = st.tuples(st.sampled_from(SERIALIZERS), st.sampled_from(COMPRESSIONS), st.booleans())


@given(config=_configs, value=_json_like)
def test_json_like_values_round_trip(moto_server: MotoServer, config: tuple[str, str | None, bool], value: Any) -> None:
    s3, ref = _pair(moto_server, *config)
    _check(s3, ref, value, states.SUCCESS)


@given(config=_configs, value=_values)
def test_rich_values_round_trip_as_celery_says(
    moto_server: MotoServer, config: tuple[str, str | None, bool], value: Any
) -> None:
    s3, ref = _pair(moto_server, *config)
    _check(s3, ref, value, states.SUCCESS)


@given(config=_configs, value=_deep)
def test_deep_nesting(moto_server: MotoServer, config: tuple[str, str | None, bool], value: Any) -> None:
    s3, ref = _pair(moto_server, *config)
    _check(s3, ref, value, states.SUCCESS)


@given(
    config=_configs,
    state=st.sampled_from(
        [states.PENDING, states.STARTED, states.RETRY, states.FAILURE, states.SUCCESS, states.REVOKED]
    ),
    value=_json_like,
    exc=_exceptions,
    traceback=st.none() | _text,
    children=st.lists(st.uuids().map(str), max_size=3),
    args=st.lists(_ints | _text, max_size=3),
    kwargs=st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), _ints, max_size=2),
)
def test_every_state_with_traceback_children_and_request(
    moto_server: MotoServer,
    config: tuple[str, str | None, bool],
    state: str,
    value: Any,
    exc: BaseException,
    traceback: str | None,
    children: list[str],
    args: list[Any],
    kwargs: dict[str, int],
) -> None:
    s3, ref = _pair(moto_server, *config)
    request = Context(
        id="req",
        task="tests.property.task",
        args=args,
        kwargs=kwargs,
        hostname="worker@host",
        retries=1,
        delivery_info={"routing_key": "celery"},
        children=[AsyncResult(c, app=s3.app) for c in children],
    )
    result = exc if state in states.EXCEPTION_STATES else value
    _check(s3, ref, result, state, traceback=traceback, request=request)


@given(task_id=_task_ids)
def test_task_ids_round_trip_or_fail_clearly(moto_server: MotoServer, task_id: str) -> None:
    s3, _ = _pair(moto_server, "json", None, False)
    key = s3.store.key(s3.get_key_for_task(task_id))
    if len(key.encode()) > 1024:
        with pytest.raises(InvalidKey, match="1024"):
            s3.store_result(task_id, "x", states.SUCCESS)
        return
    s3.store_result(task_id, {"id": task_id}, states.SUCCESS)
    meta = s3.get_task_meta(task_id, cache=False)
    assert meta["status"] == states.SUCCESS and meta["result"] == {"id": task_id}
    s3.forget(task_id)
    assert s3.get_task_meta(task_id, cache=False)["status"] == states.PENDING


@given(a=_task_ids, b=_task_ids)
def test_distinct_task_ids_never_share_a_key(moto_server: MotoServer, a: str, b: str) -> None:
    s3, _ = _pair(moto_server, "json", None, False)
    if a == b:
        return
    # Hypothesis replays ids across examples and a SUCCESS is never overwritten: a fresh
    # common prefix keeps each example's pair new without changing how the two differ.
    nonce = uuid.uuid4().hex[:8]
    a, b = nonce + a, nonce + b
    key_a, key_b = (s3.store.key(s3.get_key_for_task(t)) for t in (a, b))
    assert key_a != key_b
    if max(len(key_a.encode()), len(key_b.encode())) > 1024:
        return
    # And the store itself keeps them apart (no normalisation of '.', '..' or '//').
    s3.store_result(a, "A", states.SUCCESS)
    s3.store_result(b, "B", states.SUCCESS)
    assert s3.get_task_meta(a, cache=False)["result"] == "A"
    assert s3.get_task_meta(b, cache=False)["result"] == "B"


_leaf_results = st.uuids().map(lambda u: ("leaf", str(u)))
_group_shapes = st.recursive(
    _leaf_results,
    lambda inner: st.lists(inner, min_size=1, max_size=4).map(lambda xs: ("group", str(uuid.uuid4()), xs)),
    max_leaves=12,
)


def _build(shape: Any, app: Any) -> Any:
    if shape[0] == "leaf":
        return AsyncResult(shape[1], app=app)
    return GroupResult(shape[1], [_build(s, app) for s in shape[2]], app=app)


@given(config=_configs, children=st.lists(_group_shapes, min_size=0, max_size=5))
def test_groups_save_restore_delete(
    moto_server: MotoServer, config: tuple[str, str | None, bool], children: list[Any]
) -> None:
    s3, _ = _pair(moto_server, *config)
    group = GroupResult(str(uuid.uuid4()), [_build(c, s3.app) for c in children], app=s3.app)
    s3.save_group(group.id, group)
    restored = s3.restore_group(group.id, cache=False)
    assert restored is not None and restored.as_tuple() == group.as_tuple()
    s3.delete_group(group.id)
    assert s3.restore_group(group.id, cache=False) is None
