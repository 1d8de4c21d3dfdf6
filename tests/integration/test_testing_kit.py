"""s3result.testing as users get it: the extra, the pytest plugin, and a runtime that never loads it.

Plugin: s3result/testing/plugin.py. The project's own tests use the same fixtures (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path

import pytest

from s3result.testing.store import MotoServer

REPO = Path(__file__).resolve().parents[2]


def _docs_conftest() -> str:
    """The conftest docs/testing.md shows users: the test runs exactly that."""
    section = (REPO / "docs" / "testing.md").read_text().split("## Fixtures", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


USER_CONFTEST = _docs_conftest()

USER_TEST = """\
def test_result_stored_and_read(app):
    app.conf.update(task_always_eager=True, task_store_eager_result=True)

    @app.task
    def add(x, y):
        return x + y

    sent = add.delay(2, 3)
    assert app.AsyncResult(sent.id).get(timeout=10) == 5
    assert app.backend.client.get(app.backend.store.key(app.backend.get_key_for_task(sent.id))).etag


def test_each_test_has_its_own_prefix(s3result_backend_url, s3result_store):
    assert s3result_backend_url.startswith("s3result+http://")
    assert f"/{s3result_store.bucket}/t-" in s3result_backend_url
"""


def test_a_users_conftest_of_five_lines_gives_a_working_store(tmp_path: Path) -> None:
    """Written as a user would, in a project outside this package, run by pytest in its own process."""
    project = tmp_path / "userproject"
    project.mkdir()
    (project / "conftest.py").write_text(USER_CONFTEST)
    (project / "test_user.py").write_text(USER_TEST)
    assert len([line for line in USER_CONFTEST.splitlines() if line.strip()]) <= 5
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(project), str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
    left = {p.name for p in project.iterdir() if not p.name.startswith(".coverage")}  # a coverage run's data
    assert left - {"__pycache__"} == {"conftest.py", "test_user.py"}


def test_the_plugin_costs_nothing_when_its_fixtures_are_unused() -> None:
    """Loaded by pytest's entry point everywhere s3result is installed: it must stay inert."""
    code = "import s3result.testing.plugin, sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    assert not {m for m in loaded if m.split(".")[0] in ("moto", "celery", "kombu", "httpx", "httpcore", "boto3")}
    ours = {m for m in loaded if m.startswith("s3result")}
    assert ours <= {
        "s3result",
        "s3result.errors",
        "s3result.s3",
        "s3result.s3.errordoc",
        "s3result.s3.errors",
        "s3result.testing",
        "s3result.testing.plugin",
    }, ours
    entry = [ep for ep in metadata.entry_points(group="pytest11") if ep.value == "s3result.testing.entry"]
    assert [ep.name for ep in entry] == ["s3result"]


def test_building_the_backend_and_reading_loads_no_cli_testing_or_moto(s3result_backend_url: str) -> None:
    code = textwrap.dedent(
        f"""
        import json, sys
        from celery import Celery
        app = Celery(set_as_current=False)
        app.conf.result_backend = {s3result_backend_url!r}
        backend = app.backend
        assert backend.get_task_meta("no-such-task")["status"] == "PENDING"
        backend.store_result("t1", 7, "SUCCESS")
        assert backend.get_task_meta("t1")["result"] == 7
        print(json.dumps(sorted(sys.modules)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "s3result.backend" in loaded
    leaked = {
        m
        for m in loaded
        if m.split(".")[:2] in (["s3result", "cli"], ["s3result", "testing"], ["s3result", "conformance"])
    }
    leaked |= {m for m in loaded if m.split(".")[0] == "moto"}
    assert not leaked


def test_pip_install_of_the_package_brings_no_moto(tmp_path: Path) -> None:
    """What `pip install s3result` would install, resolved by pip itself (dry run, the machine's indexes)."""
    report = tmp_path / "report.json"
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report)]
        + ["--no-cache-dir", str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"s3result", "celery", "httpx"} <= names
    assert not {"moto", "boto3", "botocore", "flask", "werkzeug"} & names, names
    # The extra is where moto comes from.
    requires = metadata.requires("s3result") or []
    assert any(r.startswith("moto[server]") and 'extra == "testing"' in r for r in requires), requires
    assert not [r for r in requires if "moto" in r and "extra ==" not in r]
    print(f"pip dry run took {time.monotonic() - started:.1f}s")


def test_demo_app_builds_nothing_at_import_and_refuses_a_shared_folder(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os, sys
        import s3result.cli.demo_app as demo
        assert "celery" not in sys.modules
        try:
            demo.app
        except RuntimeError as exc:
            print(exc)
        os.environ["S3RESULT_DEMO_BROKER"] = "/tmp"
        try:
            demo.app
        except RuntimeError as exc:
            print(exc)
        os.environ["S3RESULT_DEMO_BROKER"] = sys.argv[1]
        opts = demo.app.conf.broker_transport_options
        print(opts["control_folder"], demo.add.name)
        """
    )
    private = tmp_path / "broker"
    private.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k != "S3RESULT_DEMO_BROKER"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(private)], check=True, capture_output=True, text=True, env=env
    ).stdout.splitlines()
    assert "run `s3result demo`" in out[0] and "S3RESULT_DEMO_BROKER" in out[0]
    assert "no one else can write to" in out[1]
    assert out[2] == f"{private / 'control'} s3result.cli.demo_app.add"


@pytest.mark.parametrize("fixture_user", ["moto_server"])
def test_the_projects_own_store_is_the_kits(request: pytest.FixtureRequest, fixture_user: str) -> None:
    store = request.getfixturevalue(fixture_user)
    assert store is request.getfixturevalue("s3result_store") and isinstance(store, MotoServer)


def test_moto_without_its_server_extra_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    """``pip install moto`` (for its decorators) without ``[server]``: the fixture says which extra, in one line.

    The project shadows flask with a module that cannot be imported, as when moto's server
    dependencies were never installed; tests that do not use the fixtures still pass.
    """
    project = tmp_path / "userproject"
    project.mkdir()
    (project / "conftest.py").write_text(USER_CONFTEST)
    (project / "flask.py").write_text('raise ModuleNotFoundError("No module named \'flask\'", name="flask")\n')
    (project / "test_user.py").write_text("def test_plain():\n    pass\n\n\ndef test_store(app):\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(project), str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = done.stdout + done.stderr
    assert "1 passed" in out and "1 error" in out and "During handling" not in out, out[-3000:]
    assert "needs moto's server" in out and "pip install 's3result[testing]'" in out, out[-3000:]
    assert "Traceback" not in out and "moto server did not start" not in out, out[-3000:]


PLUGIN_TEST = """\
import sys


def test_the_plugin_is_registered_once(request, s3result_backend_url):
    manager = request.config.pluginmanager
    module = sys.modules["s3result.testing.plugin"]
    assert [p for p in manager.get_plugins() if p is module] == [module]
    assert s3result_backend_url.startswith("s3result+http://")
"""


@pytest.mark.parametrize(
    "argv,conftest,autoload",
    [
        ([], "", True),
        (["-p", "s3result"], "", True),
        (["-p", "s3result.testing.plugin"], "", True),
        ([], 'pytest_plugins = ["s3result.testing.plugin"]\n', True),
        (["-p", "s3result.testing.plugin"], 'pytest_plugins = ["s3result.testing.plugin"]\n', True),
        (["-p", "s3result"], 'pytest_plugins = ["s3result.testing.plugin"]\n', True),
        ([], 'pytest_plugins = ["s3result.testing.plugin"]\n', False),
        (["-p", "s3result"], "", False),
        (["-p", "s3result", "-p", "s3result.testing.plugin"], "", True),
        (["-p", "s3result.testing.plugin", "-p", "s3result"], "", True),
        (["-p", "s3result", "-p", "s3result.testing.plugin"], "", False),
    ],
    ids=[
        "entry-point",
        "-p-s3result",
        "-p-module",
        "pytest_plugins",
        "-p-module+pytest_plugins",
        "-p-s3result+pytest_plugins",
        "pytest_plugins-no-autoload",
        "-p-s3result-no-autoload",
        "-p-s3result+-p-module",
        "-p-module+-p-s3result",
        "-p-s3result+-p-module-no-autoload",
    ],
)
def test_the_plugin_loads_once_whichever_way_it_is_named(
    tmp_path: Path, argv: list[str], conftest: str, autoload: bool
) -> None:
    """In a user's project outside the package: every way of naming the plugin gives its fixtures,
    registered once, and never pytest's "Plugin already registered under a different name"."""
    project = tmp_path / "userproject"
    project.mkdir()
    (project / "conftest.py").write_text(conftest)
    (project / "test_user.py").write_text(PLUGIN_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *argv,
            "--rootdir",
            str(project),
            str(project),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "1 passed" in out, out[-3000:]
    assert "already registered" not in out, out[-3000:]


def test_no_s3result_turns_the_entry_point_off(tmp_path: Path) -> None:
    project = tmp_path / "userproject"
    project.mkdir()
    (project / "test_user.py").write_text(PLUGIN_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:s3result", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0 and "fixture 's3result_backend_url' not found" in done.stdout, done.stdout[-3000:]
