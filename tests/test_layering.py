"""The shape of the house, held: the figures ``python -m tests.layering`` prints, as assertions.

Measured from the source by ``tests/layering.py`` (every import counts, TYPE_CHECKING and
inside functions too). A figure that got better is pinned here at its new value; the targets
still out of reach are said in the messages and in the strict xfails below.
"""

from __future__ import annotations

import pytest

from tests import layering, process_state

#: The runtime's longest import chain, at most: the S3 client is 5 deep (client -> connect ->
#: transport -> bodies -> errors), and three layers stand on it (backend -> chords.engine ->
#: chords.counter -> s3.client). Modules that only call a client name it through the protocol
#: ``s3.api.ObjectStore`` (3 deep), not ``S3Client``.
DEPTH = 8
#: The longest chain with the command on top (cli.__main__ -> cli.main -> cli.check ->
#: cli.expiry_check -> cli.expiry -> s3.client ...): not a worker's imports; held where it is.
DEPTH_WITH_CLI = 10
#: Other libraries' private attributes we use, each because there is no public way (the comment
#: at the use says why; the tests below fail if the library drops it).
OTHERS_PRIVATE = {"s3result.chords.firing: ._retry_publish", "s3result.waits.notifyredis: ._sock"}


@pytest.fixture(scope="module")
def modules() -> dict[str, layering.Module]:
    return layering.load()


def test_no_import_cycles(modules: dict[str, layering.Module]) -> None:
    assert layering.cycles(modules) == []


def test_layers_import_one_way(modules: dict[str, layering.Module]) -> None:
    """s3/ <- errors <- results/ <- waits/, chords/ <- backend, worker <- cli/, testing/, conformance/."""
    assert layering.against_layers(modules) == []


def test_every_runtime_module_lives_in_a_layer_folder_or_is_the_top(modules: dict[str, layering.Module]) -> None:
    """No flat module beside the folders but the backend, the worker and the public errors."""
    flat = {n for n in layering.runtime(modules) if n.count(".") == 1 and not modules[n].is_package}
    assert flat == {"s3result.backend", "s3result.errors", "s3result.worker"}


def test_runtime_import_depth_is_at_most_8(modules: dict[str, layering.Module]) -> None:
    depth, chain = layering.depth(layering.runtime(modules))
    assert depth <= DEPTH, f"import depth {depth} (at most {DEPTH}): {' -> '.join(chain)}"


def test_import_depth_with_the_cli_does_not_grow(modules: dict[str, layering.Module]) -> None:
    depth, chain = layering.depth(modules)
    assert depth <= DEPTH_WITH_CLI, f"import depth {depth} (at most {DEPTH_WITH_CLI}): {' -> '.join(chain)}"


def test_no_runtime_function_over_60_lines(modules: dict[str, layering.Module]) -> None:
    long = [(f, n) for m in layering.runtime(modules).values() for f, n in layering.functions(m) if n > 60]
    assert long == [], f"split these into named steps: {long}"


def test_no_runtime_module_over_400_lines(modules: dict[str, layering.Module]) -> None:
    big = {n: m.lines for n, m in layering.runtime(modules).items() if m.lines > 400}
    assert big == {}, f"split along a seam (one job a module): {big}"


def test_no_private_names_across_modules(modules: dict[str, layering.Module]) -> None:
    private = {u for m in modules.values() for u in m.private_uses if not u.startswith(m.name + ".")}
    assert private == set(), f"make these public, or move them where they are used: {private}"


def test_no_private_attributes_of_other_objects(modules: dict[str, layering.Module]) -> None:
    found = {u for m in modules.values() for u in layering.foreign_private_attributes(m)}
    assert found <= OTHERS_PRIVATE, (
        f"add a public property on the owning class (ours), or say why there is no public way: {found - OTHERS_PRIVATE}"
    )


def test_only_the_retry_policy_and_the_poll_schedule_sleep(modules: dict[str, layering.Module]) -> None:
    sleepy = {n for n, m in layering.runtime(modules).items() if layering.sleepers(m)}
    assert sleepy <= {"s3result.s3.retry", "s3result.waits.polling"}, f"wait through s3result.s3.retry.sleep: {sleepy}"


def test_s3backend_inherits_nothing_of_ours() -> None:
    """S3Backend composes a result store, a waiter and a chord engine; only Celery's classes are its bases."""
    from s3result.backend import S3Backend

    ours = [c.__qualname__ for c in S3Backend.__mro__[1:] if c.__module__.startswith("s3result")]
    assert ours == []


CELERY_BACKENDS = {"Backend", "BaseBackend", "KeyValueStoreBackend", "BaseKeyValueStoreBackend", "AsyncBackendMixin"}


def test_no_class_of_ours_is_a_celery_backend_but_s3backend(modules: dict[str, layering.Module]) -> None:
    """No mixin: no other class of the runtime subclasses one of Celery's backend classes."""
    import ast

    found = [
        f"{m.name}.{node.name}"
        for m in layering.runtime(modules).values()
        for node in ast.walk(m.tree)
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base).split(".")[-1] in CELERY_BACKENDS for base in node.bases)
        and node.name != "S3Backend"
    ]
    assert found == []


def test_celery_still_has_the_retrying_publish_chords_use() -> None:
    """chords.firing publishes a chord's body through ``app.amqp._retry_publish(publish, *args)``,
    as Celery's own chord backends do (celery/backends/base.py, redis.py): there is no public
    equivalent. It must still call ``publish`` with the arguments and return its answer."""
    import inspect

    from celery import Celery

    publish = Celery(set_as_current=False).amqp._retry_publish
    assert callable(publish), "Celery dropped app.amqp._retry_publish: update s3result/chords/firing.py"
    params = list(inspect.signature(publish).parameters)
    assert params[0] == "publish", f"Celery changed _retry_publish({params}): update s3result/chords/firing.py"
    calls: list[tuple[object, ...]] = []
    assert publish(lambda *a: calls.append(a) or "sent", [1, 2]) == "sent"
    assert calls == [([1, 2],)], f"_retry_publish no longer calls publish(*args): {calls}"


def test_redis_py_connections_still_keep_their_socket_as_sock() -> None:
    """notifyredis's loop selects on ``pubsub.connection._sock``: redis-py has no public accessor
    (tests/integration/test_redis_socket.py selects on it against a real server)."""
    from redis.connection import Connection

    connection = Connection()
    assert hasattr(connection, "_sock"), "redis-py renamed Connection._sock: update notifyredis (the Redis loop)"
    assert connection._sock is None  # not connected yet


def test_one_runtime_module_registers_fork_hooks(modules: dict[str, layering.Module]) -> None:
    """Every fork hook goes through ``s3result.s3.process``: one registry, one documented order."""
    import ast

    calling = sorted(
        name
        for name, module in layering.runtime(modules).items()
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Attribute) and node.attr == "register_at_fork"
    )
    assert calling == ["s3result.s3.process"], f"declare a slot of s3result.s3.process.PROCESS instead: {calling}"


def test_no_mutable_module_global_outside_the_process_state(modules: dict[str, layering.Module]) -> None:
    """Process-wide state is a slot of s3result.s3.process.PROCESS; the few globals left say why."""
    found = {s for m in layering.runtime(modules).values() for s in layering.module_state(m)}
    table = set(process_state.GLOBALS)
    assert found - table == set(), (
        "new mutable module global: declare it as a slot of s3result.s3.process.PROCESS (with its fate in a "
        f"forked child) and list it in tests/process_state.py SLOTS, or keep it on an object: {sorted(found - table)}"
    )
    assert table - found == set(), f"gone from the source: drop from tests/process_state.py: {sorted(table - found)}"


def test_every_slot_of_the_process_state_is_listed_with_its_fate(modules: dict[str, layering.Module]) -> None:
    """tests/process_state.py SLOTS is what the runtime declares: the same names, the same fates."""
    declared = {n: f for m in layering.runtime(modules).values() for n, f in layering.slots(m).items()}
    listed = {name: fate for name, (fate, _why) in process_state.SLOTS.items()}
    assert declared == listed, (
        f"declared in the source but not listed (or with another fate): {sorted(set(declared.items()) - set(listed.items()))}; "
        f"listed but not declared: {sorted(set(listed.items()) - set(declared.items()))}"
    )


def test_every_module_that_declares_a_slot_is_in_the_runtime_layers(modules: dict[str, layering.Module]) -> None:
    """Slots are the runtime's: the command, the testing kit and conformance keep their state on objects."""
    on_top = {n for n, m in modules.items() if n.startswith(layering.ON_TOP) and layering.slots(m)}
    assert on_top == set()
