"""Layering, public surface and the no-boto promise, each checked in a clean interpreter."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = [
    "s3result",
    "s3result.s3",
    "s3result.s3.config",
    "s3result.s3.errors",
    "s3result.s3.sigv4",
    "s3result.errors",
    "s3result.results.config",
    "s3result.s3.credentials",
    "s3result.s3.credentials.base",
    "s3result.s3.credentials.chain",
    "s3result.s3.credentials.providers",
    "s3result.s3.credentials.awsfiles",
    "s3result.results.precondition",
    "s3result.results.verdict",
    "s3result.s3.retry",
    "s3result.s3.limiter",
    "s3result.s3.transport",
    "s3result.s3.network",
    "s3result.s3.client",
    "s3result.s3.answers",
    "s3result.s3.integrity",
    "s3result.s3.express",
    "s3result.backend",
    "s3result.results.store",
    "s3result.waits.waiter",
    "s3result.chords.engine",
    "s3result.chords.firing",
    "s3result.worker",
    "s3result.results.etags",
    "s3result.results.cas",
    "s3result.cli.check",
    "s3result.cli.conformance",
    "s3result.cli.expiry_check",
    "s3result.cli.findings",
    "s3result.cli.session_check",
    "s3result.conformance.run",
    "s3result.conformance.verdicts",
    "s3result.testing.express",
    "s3result.cli.cost",
    "s3result.cli.expiry",
    "s3result.testing.store",
    "s3result.testing.entry",
    "s3result.testing.plugin",
]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_sigv4_imports_only_the_stdlib() -> None:
    loaded = _modules_after("import s3result.s3.sigv4")
    assert not {"httpx", "httpcore", "celery", "kombu"} & loaded


def test_package_import_is_cheap() -> None:
    loaded = _modules_after("import s3result")
    assert not {"httpx", "httpcore", "celery", "kombu", "ssl"} & loaded


def test_client_never_imports_celery() -> None:
    loaded = _modules_after("import s3result.s3.client")
    assert not {"celery", "kombu"} & loaded


def test_backend_use_never_imports_boto(tmp_path: pytest.TempPathFactory) -> None:
    code = """
from celery import Celery
app = Celery(set_as_current=False)
app.conf.result_backend = 's3result+http://AKID:SECRET@127.0.0.1:9/bucket/prefix'
b = app.backend
assert type(b).__module__ == 's3result.backend', type(b)
try:
    b.get_task_meta('x')
except Exception:
    pass
"""
    loaded = _modules_after(code)
    assert "s3result.backend" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("boto3", "botocore", "s3transfer", "aiobotocore")}


def test_importing_the_backend_connects_no_celery_signal() -> None:
    """The worker's start check is connected by the first S3Backend built (``s3result.worker``),
    never as a side effect of an import: an app that only imports s3result gets no handler."""
    code = """
import weakref
from celery import signals
from celery.utils.dispatch import Signal
import s3result.backend, s3result.worker
def ours(signal):
    # A receiver is ours by its dispatch_uid or by where its function lives (one connected
    # without a dispatch_uid is keyed by ids only), weakly or strongly held.
    def module(receiver):
        fn = receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
        fn = getattr(fn, '__func__', fn)
        return getattr(fn, '__module__', '') or ''
    return [r for r in signal.receivers if 's3result' in repr(r[0]) or module(r[1]).startswith('s3result')]
every = {n: ours(s) for n, s in vars(signals).items() if isinstance(s, Signal)}
assert not any(every.values()), every
assert not s3result.worker.connected()
from celery import Celery
app = Celery(set_as_current=False)
app.conf.result_backend = 's3result+http://AKID:SECRET@127.0.0.1:9/bucket/prefix'
app.backend
found = {n: ours(getattr(signals, n)) for n in ('worker_init', 'worker_ready', 'worker_before_create_process')}
assert {n: len(v) for n, v in found.items()} == {'worker_init': 1, 'worker_ready': 2, 'worker_before_create_process': 1}, found
app.backend.__class__(app=app, url=app.conf.result_backend)  # a second backend connects nothing more
again = {n: ours(getattr(signals, n)) for n in ('worker_init', 'worker_ready', 'worker_before_create_process')}
assert again == found, again
"""
    _modules_after(code)


def test_plain_http_endpoint_builds_no_tls_context() -> None:
    code = """
import ssl
calls = []
orig = ssl.create_default_context
ssl.create_default_context = lambda *a, **k: calls.append(1) or orig(*a, **k)
from s3result.results import config
from s3result.s3.client import S3Client
c = S3Client(config.build(url='s3result+http://A:S@127.0.0.1:9/bucket').s3)
c._get_slot()
assert not calls, calls
"""
    _modules_after(code)


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    declared = list(module.__all__)
    assert declared == sorted(declared) or name == "s3result.backend"
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and getattr(v, "__module__", name) == name
        and not isinstance(v, type(sys))
        and n not in ("annotations", "logger", "TYPE_CHECKING")
        and (callable(v) or isinstance(v, type))
    }
    if name == "s3result":
        public = set()
    assert public <= set(declared), f"public but not in __all__: {public - set(declared)}"
    for n in declared:
        assert hasattr(module, n)


def test_docs_layout_names_every_module() -> None:
    """The layout in docs/contributing.md matches the tree: every module of the package is named there."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "contributing.md").read_text()
    layout = page[page.index("## Layout") :].split("```")[1]
    for path in sorted((root / "s3result").rglob("*.py")):
        name = path.stem
        if name == "__init__":
            continue
        assert name in layout, (
            f"docs/contributing.md's layout does not name s3result/{path.relative_to(root / 's3result')}"
        )


def test_the_s3_client_on_its_own_never_imports_celery_or_kombu() -> None:
    code = """
from s3result.s3 import S3Client, S3Config
c = S3Client(S3Config(bucket='bucket', endpoint_url='http://127.0.0.1:9', access_key='A', secret_key='S'))
"""
    loaded = _modules_after(code)
    assert "s3result.s3.client" in loaded
    assert not {"celery", "kombu", "s3result.backend", "s3result.results.config", "s3result.results.settings"} & loaded


def _imports_of(path: Path, module: str, modules: set[str]) -> set[str]:
    """Every s3result module ``path`` imports, at the top, in functions and under TYPE_CHECKING.

    ``from . import x`` counts as importing ``x`` (a submodule) only, not its package.
    """
    import ast

    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            subs = {f"{base}.{a.name}" for a in node.names} & modules
            found |= subs or {base}
    return found & modules - {module}


def test_no_import_cycle_through_the_command_the_kit_or_conformance() -> None:
    """Counting every import: cli/, testing/ and conformance/ sit on top, and no cycle runs through them."""
    root = Path(__file__).resolve().parent.parent
    paths = {}
    for path in (root / "s3result").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: _imports_of(p, m, set(paths)) for m, p in paths.items()}
    on_top = sorted(m for m in graph if m.split(".")[1:2] in (["cli"], ["testing"], ["conformance"]))
    for start in on_top:
        stack, seen = [(start, [start])], {start}
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    pytest.fail(f"import cycle: {' -> '.join([*trail, nxt])}")
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
