"""The s3result command against moto: output and exit codes, misconfigurations included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from celery import Celery, states

from s3result.cli import main
from s3result.testing.store import MotoServer

ROOT = Path(__file__).resolve().parents[2]


def _readonly(moto: MotoServer) -> str:
    return (
        moto.url("cli")
        .replace(moto.access_key, moto.readonly_access_key)
        .replace(moto.secret_key, moto.readonly_secret_key)
    )


def test_check_all_good(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--url", moto_server.url("cli")]) == 0
    out = capsys.readouterr().out
    assert "bucket: s3result-tests" in out and "prefix: cli" in out and "addressing: path-style" in out
    assert f"credentials: settings (access key ending in {moto_server.access_key[-4:]})" in out
    assert moto_server.secret_key not in out and moto_server.access_key not in out
    for probe in ("PUT", "GET", "HEAD", "GET missing key", "DELETE", "conditional writes", "clock"):
        assert f"] {probe}:" in out
    assert "supported: one request per write" in out and "all good" in out
    assert "\033[" not in out  # no colour without a terminal


def test_check_json_for_ci(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", "--url", moto_server.url("cli")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["configuration"]["region"] == "us-east-1"
    assert all(c.get("ms", 0) >= 0 for c in report["checks"])


def test_check_json_has_no_empty_fields(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", "--url", moto_server.url("cli")]) == 0
    report = json.loads(capsys.readouterr().out)
    passed = [c for c in report["checks"] if c["ok"] and not c["warning"]]
    assert passed and all("fix" not in c for c in passed), passed

    def empty(value: object) -> bool:
        if isinstance(value, dict):
            return any(empty(v) for v in value.values())
        if isinstance(value, list):
            return any(empty(v) for v in value)
        return value in ("", None)

    assert not empty(report), report


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_check_says_each_fix_once(moto_server: MotoServer, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    """The store's error carries the same hint as the fix: printed once, on the fix line."""
    url = moto_server.url("cli").replace(moto_server.secret_key, "wrong")
    assert main(["check", *(["--json"] if as_json else []), "--url", url]) == 1
    out = capsys.readouterr().out
    hint = "the secret access key is wrong for this access key id"
    assert out.count(hint) == 1, out
    if not as_json:
        assert f"       fix: {hint}" in out, out
        assert "SignatureDoesNotMatch: The request signature we calculated does not match" in out, out


def test_check_names_the_missing_permission(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", "--url", _readonly(moto_server)]) == 1
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["PUT"]["ok"] and '"s3:PutObject" on "arn:aws:s3:::s3result-tests/cli/*"' in checks["PUT"]["fix"]
    assert not checks["DELETE"]["ok"] and "s3:DeleteObject" in checks["DELETE"]["fix"]
    assert checks["GET missing key"]["ok"]  # it may read: a missing key is a 404, not a 403
    assert moto_server.readonly_secret_key not in json.dumps(report)


def test_check_wrong_secret_and_missing_bucket(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--url", moto_server.url("cli").replace(moto_server.secret_key, "wrong")]) == 1
    out = capsys.readouterr().out
    assert "SignatureDoesNotMatch" in out and "fix: the secret access key is wrong" in out and "problems found" in out
    assert main(["check", "--url", moto_server.url("cli").replace(moto_server.bucket, "no-such-bucket")]) == 1
    assert "create the bucket" in capsys.readouterr().out


def test_check_bad_config_and_no_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--url", "s3result://bucket?colour=blue"]) == 1
    assert "colour: unknown option" in capsys.readouterr().err
    assert main(["check", "--url", "s3result+http://127.0.0.1:9/bucket"]) == 1
    out = capsys.readouterr().out
    assert "no S3 credentials found" in out and "credentials: none found" in out


def test_check_reads_the_app_like_the_worker(
    moto_server: MotoServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLIAPP_BACKEND", moto_server.url("fromapp"))
    monkeypatch.chdir(ROOT)
    assert main(["check", "--app", "tests.cliapp.celery"]) == 0
    out = capsys.readouterr().out
    assert "prefix: fromapp" in out
    # The app sets result_expires=None: results are meant to be kept, so no rule is not a
    # problem, and the way to expire them anyway is a command that runs as pasted (same app).
    assert "kept forever, as result_expires=None asks" in out, out
    hint = "(to expire them anyway: s3result lifecycle --apply --days N --app tests.cliapp.celery)"
    assert hint in out, out
    command = hint.strip("()").split(": ", 1)[1].replace(" N ", " 2 ").split()
    assert main(command[1:]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["check", "--app", "tests.cliapp.celery"]) == 0
    out = capsys.readouterr().out
    assert "expires s3://" in out and "after 2 days" in out, out
    assert "result_expires=None asks to keep results, but lifecycle rule" in out, out


def test_get_and_forget(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    app = Celery("cli", set_as_current=False)
    app.conf.result_backend = moto_server.url("cli")
    tid = str(uuid.uuid4())
    app.backend.store_result(tid, {"answer": 42}, states.SUCCESS)
    assert main(["get", tid, "--url", moto_server.url("cli")]) == 0
    out = capsys.readouterr().out
    assert f"task {tid}: SUCCESS" in out and "{'answer': 42}" in out
    assert main(["get", tid, "--json", "--url", moto_server.url("cli")]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == {"answer": 42}
    assert main(["forget", tid, "--url", moto_server.url("cli")]) == 0
    assert f"cli/celery-task-meta-{tid}" in capsys.readouterr().out
    assert main(["get", tid, "--url", moto_server.url("cli")]) == 3
    err = capsys.readouterr().err
    assert f"nothing stored for task {tid} at 'cli/celery-task-meta-{tid}'" in err and "\n" not in err.rstrip("\n")
    assert main(["forget", tid, "--url", moto_server.url("cli")]) == 3
    err = capsys.readouterr().err
    assert "nothing stored" in err and "nothing deleted" in err
    failed = str(uuid.uuid4())
    app.backend.store_result(failed, ValueError("boom"), states.FAILURE, traceback="Traceback: boom")
    assert main(["get", failed, "--url", moto_server.url("cli")]) == 0
    out = capsys.readouterr().out
    assert "FAILURE" in out and "ValueError: boom" in out and "Traceback: boom" in out


def test_lifecycle_prints_xml_aws_and_mc(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lifecycle", "--days", "7", "--url", moto_server.url("cli")]) == 0
    out = capsys.readouterr().out
    assert "<Prefix>cli/</Prefix>" in out and "<Days>7</Days>" in out
    assert "aws s3api put-bucket-lifecycle-configuration --bucket s3result-tests" in out
    assert "mc ilm rule add --expire-days 7 --noncurrent-expire-days 7 --prefix 'cli/'" in out
    assert "<NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays></NoncurrentVersionExpiration>" in out


def test_cost_with_default_and_custom_prices(capsys: pytest.CaptureFixture[str]) -> None:
    # 1 PUT per task; get() of a 1 s task polls at 0, 0.025, 0.075, 0.175, 0.375, 0.775 and
    # 1.275 s (poll_initial_delay 0.025, doubling to Celery's 0.5 s interval): 7 GETs.
    assert main(["cost", "--tasks-per-day", "100000"]) == 0
    out = capsys.readouterr().out
    assert "per task 1 PUT, 7 GET" in out
    assert "PUT       3,000,000 requests" in out and "$15.00" in out and "GET      21,000,000" in out
    assert "total $23.40 per month" in out
    assert (
        main(["cost", "--tasks-per-day", "1000", "--put-price", "0", "--get-price", "0", "--reads-per-task", "3"]) == 0
    )
    assert "GET         300,000 requests" in capsys.readouterr().out


def test_cost_counts_later_states_polls_and_chords(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--tasks-per-day", "1000", "--track-started", "--task-seconds", "0"]) == 0
    assert "per task 2 PUT, 1 GET" in capsys.readouterr().out  # STARTED then SUCCESS: 2 PUTs (ETag remembered)
    assert main(["cost", "--tasks-per-day", "1000", "--task-seconds", "5", "--interval", "1"]) == 0
    # 1 + 6 polls up to 1.575 s (0.025 doubling to the 1 s interval), then 4 more to 5 s.
    assert "per task 1 PUT, 11 GET" in capsys.readouterr().out
    assert main(["cost", "--tasks-per-day", "1000", "--waited", "0", "--chord-parts", "10"]) == 0
    assert "per task 2.45455 PUT" in capsys.readouterr().out  # 11 states + 1 group + 15 counter PUTs, per 11 tasks
    # A chord's get() reads each pending part at each poll (Celery's follow_parents), one after the
    # other: 20 ms a GET spaces the polls out (fewer checks of parts pending), 0 s does not.
    gets = {}
    for latency in ("0", "0.02", "0.2"):
        assert main(["cost", "--tasks-per-day", "1000", "--chord-parts", "10", "--latency", latency]) == 0
        gets[latency] = float(capsys.readouterr().out.split(" PUT, ")[1].split(" GET")[0])
    assert gets["0"] > gets["0.02"] > gets["0.2"], gets
    # A threads (or gevent, eventlet) worker counts a process's finished parts in one compare-and-swap
    # (counter.group_commit): 20 parts of 1 s at -P threads -c 50 took 4 to 6 counter PUTs in all,
    # producer's included, at the wire; 1 round per part, the old floor, said 20 (review of r15).
    assert (
        main(["cost", "--tasks-per-day", "1000", "--waited", "0", "--chord-parts", "20", "--chord-cas-rounds", "0.25"])
        == 0
    )
    assert "per task 1.28571 PUT" in capsys.readouterr().out  # 21 states + 1 group + 5 counter PUTs, per 21 tasks
    # Groups of 100 tasks of 5 s, one GroupResult.get() each: 212 GETs per group, as counted at the
    # wire by benchmarks/waits.py (100 in the first round, a sentinel per poll, 100 that find them).
    assert main(["cost", "--tasks-per-day", "1000", "--group-size", "100", "--task-seconds", "5"]) == 0
    assert "per task 1 PUT, 2.12 GET" in capsys.readouterr().out
    # Parts run 4 at a time finish in waves: the chord's get() reads the later waves' parts at
    # every check until they are done, more GETs than parts that all end together.
    per_task = {}
    for concurrency in ("0", "4"):
        argv = ["cost", "--tasks-per-day", "1000", "--chord-parts", "20", "--worker-concurrency", concurrency]
        assert main(argv) == 0
        per_task[concurrency] = float(capsys.readouterr().out.split(" PUT, ")[1].split(" GET")[0])
    assert per_task["4"] > per_task["0"], per_task


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["cost", "--tasks-per-day", "-5"], "argument --tasks-per-day: -5 is not a number of tasks (1 or more)"),
        (["cost", "--tasks-per-day", "10", "--interval", "0"], "argument --interval: 0 is not a poll interval"),
        (["cost", "--tasks-per-day", "10", "--task-seconds", "-1"], "argument --task-seconds: -1 is not a number"),
        (["cost", "--tasks-per-day", "10", "--chord-parts", "1"], "--chord-parts 1 is not a chord"),
        (["cost", "--tasks-per-day", "10", "--group-size", "1"], "--group-size 1 is not a group"),
        (
            [
                "cost",
                "--tasks-per-day",
                "10",
                "--group-size",
                "10000",
                "--worker-concurrency",
                "2",
                "--interval",
                "0.001",
            ],
            "--task-seconds 1 x 5000 waves at --interval 0.001 is over 1,000,000 polls per get()",
        ),
        (
            ["cost", "--tasks-per-day", "10", "--chord-parts", "100000", "--worker-concurrency", "2"],
            "100000 tasks at --worker-concurrency 2 make more than 10,000 waves",
        ),
        (
            ["cost", "--tasks-per-day", "10", "--group-size", "5", "--chord-parts", "5"],
            "give --group-size or --chord-parts, not both",
        ),
        (
            ["cost", "--tasks-per-day", "10", "--latency", "-0.1"],
            "argument --latency: -0.1 is not a number (0 or more)",
        ),
        (["cost", "--tasks-per-day", "ten"], "'ten' is not a number of tasks"),
        # A whole number past a float's range: refused in one line, not "unexpected OverflowError".
        (["cost", "--tasks-per-day", "10", "--group-size", "9" * 400], "argument --group-size: 999999"),
        (["cost", "--tasks-per-day", "10", "--chord-parts", "9" * 400], "argument --chord-parts: 999999"),
        (["cost", "--tasks-per-day", "10", "--chord-cas-rounds", "0"], "argument --chord-cas-rounds: 0 is not"),
        # Finite inputs whose product overflows: no "$inf per month" (review of issue 15).
        (["cost", "--tasks-per-day", "1e6", "--put-price", "1e308"], "the monthly figures overflow"),
        (["cost", "--tasks-per-day", "1e300", "--retention-days", "1e300"], "the monthly figures overflow"),
        (["lifecycle", "--days", "0", "--url", "s3result://b/p"], "argument --days: 0 is not a whole number of days"),
        (["lifecycle", "--url", "s3result://bucket"], "no prefix is configured"),
        (["get", "", "--url", "s3result://b/p"], "argument task_id: '' is not a task id"),
        (["check", "--app", "nosuchmod"], "cannot load the Celery app 'nosuchmod' (ModuleNotFoundError"),
        (["check"], "give --app proj.celery or --url"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors exit from inside main
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_bare_command_prints_help_and_version_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    from s3result import __version__

    assert main([]) == 2
    out = capsys.readouterr().out
    assert "usage: s3result" in out and "lifecycle" in out and "exit status: 0 ok" in out
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"s3result {__version__}"


def test_app_without_an_s3result_backend_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "otherapp.py").write_text(
        "from celery import Celery\napp = Celery('other')\napp.conf.result_backend = 'redis://localhost/0'\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["check", "--app", "otherapp"]) == 2
    err = capsys.readouterr().err
    assert "not an s3result:// URL" in err and err.count("\n") == 1


def test_check_warns_about_pickle_and_only_a_result_expires_the_user_set(
    moto_server: MotoServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from s3result.cli.check import findings_for
    from s3result.results.config import from_celery_conf

    app = Celery("pickle", set_as_current=False)
    app.conf.result_backend = moto_server.url("cli")
    settings = from_celery_conf(app.conf, app.conf.result_backend)
    _, found = findings_for(settings, app)
    assert not [f for f in found if "result_expires" in f.detail]  # Celery's default 1 day is not "set"
    assert not [f for f in found if f.name == "security" and "pickle" in f.detail]
    app.conf.update(result_accept_content=["json", "pickle"], result_expires=3 * 86400)
    _, found = findings_for(settings, app)
    security = [f for f in found if f.name == "security" and "pickle" in f.detail]
    assert security and "can run code in every process that reads results" in security[0].detail
    assert "result_accept_content=['json']" in security[0].fix
    expiry = [f for f in found if f.name == "expiry"]
    assert expiry and expiry[0].fix == "s3result lifecycle --apply --days 3"


def test_console_script_runs(moto_server: MotoServer) -> None:
    exe = Path(sys.executable).with_name("s3result")
    done = subprocess.run(
        [str(exe), "check", "--url", moto_server.url("cli")],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all good" in done.stdout
    helped = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    for command in ("check", "demo", "get", "forget", "lifecycle", "cost"):
        assert command in helped.stdout


def test_cost_refuses_a_share_over_one_and_never_hangs(capsys: pytest.CaptureFixture[str]) -> None:
    """--waited is a share (0..1); a task time of 1e12 s or a million-part chord answers at once, or in one line."""
    import subprocess
    import sys
    from pathlib import Path

    assert main(["cost", "--tasks-per-day", "10", "--waited", "2"]) == 2
    err = capsys.readouterr().err
    assert "--waited" in err and "between 0 and 1" in err and err.count("\n") == 1
    exe = str(Path(sys.executable).with_name("s3result"))
    huge = subprocess.run(
        [exe, "cost", "--tasks-per-day", "10", "--task-seconds", "1e12"], capture_output=True, text=True, timeout=60
    )
    assert huge.returncode == 2 and "--task-seconds" in huge.stderr and huge.stderr.count("\n") == 1, huge.stderr
    wide = subprocess.run(
        [
            exe,
            "cost",
            "--tasks-per-day",
            "10",
            "--chord-parts",
            "1000000",
            "--task-seconds",
            "100",
            "--interval",
            "0.01",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wide.returncode == 0 and "per task" in wide.stdout, wide.stderr


def test_help_states_the_exit_status_main_returns_for_a_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    """A typo in a URL option is an invalid configuration: status 1, as README and --help both say."""
    assert main(["get", "x", "--url", "s3result://bucket?conditonal_writes=etag"]) == 1
    assert "conditonal_writes: unknown option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "1 problems found, the store refused, or an invalid configuration; 2 a usage mistake" in text


@pytest.mark.parametrize("task_id", ["ab\udcff", "x" * 2000], ids=["undecodable-byte", "too-long"])
@pytest.mark.parametrize("command", ["get", "forget"])
def test_an_id_that_cannot_be_a_key_is_a_usage_mistake(
    moto_server: MotoServer, capsys: pytest.CaptureFixture[str], command: str, task_id: str
) -> None:
    """A byte the locale cannot decode (argv holds it as a surrogate) or an over-long id: status 2, one line."""
    assert main([command, task_id, "--url", moto_server.url("cli")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"s3result {command}: argument task_id: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("command", ["get", "forget"])
def test_get_and_forget_against_a_silent_store_end_on_their_timeout(
    command: str, silent_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store that accepts connections and never answers: the command ends after --timeout with
    one line saying which limit ended it (not read_timeout x attempts, 90 s, in silence)."""
    import time

    port = silent_port
    started = time.monotonic()
    code = main([command, "abc", "--timeout", "1.5", "--url", f"s3result+http://AK:SK@127.0.0.1:{port}/bucket/p"])
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1 and took < 4, (code, took, err)
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err, err
    assert f"s3result {command} gave up after --timeout 1.5 s" in err and "read_timeout" not in err, err
    # A read_timeout shorter than --timeout ends it first, and the error names read_timeout.
    url = f"s3result+http://AK:SK@127.0.0.1:{port}/bucket/p?read_timeout=0.3&max_attempts=1"
    assert main([command, "abc", "--timeout", "30", "--url", url]) == 1
    err = capsys.readouterr().err
    assert "raise read_timeout" in err and "gave up after" not in err, err
