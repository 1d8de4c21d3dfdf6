"""The command's own words: every command has a description, every option its help, and plural days.

Integration: tests/integration/test_cli.py runs the commands against moto.
"""

from __future__ import annotations

import argparse

import pytest

from s3result.cli import main
from s3result.cli.expiry import days_text
from s3result.cli.main import _parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_has_a_description_and_every_option_its_help() -> None:
    missing = []
    for name, command in _commands().items():
        if not command.description:
            missing.append(f"{name}: no description")
        for action in command._actions:
            if not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}: no help")
    assert not missing, missing


def test_cost_help_has_a_description_and_tasks_per_day_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["cost", "--help"])
    out = capsys.readouterr().out
    assert "Requests per task and the cost per month" in out
    assert "tasks your app runs per day (required)" in " ".join(out.split())


def test_one_day_is_one_day(capsys: pytest.CaptureFixture[str]) -> None:
    assert (days_text(1), days_text(2), days_text(0.5)) == ("1 day", "2 days", "0.5 days")
    assert main(["cost", "--tasks-per-day", "100"]) == 0
    out = capsys.readouterr().out
    assert "(1 day x 300 B)" in out and "1 days" not in out and "day(s)" not in out, out


@pytest.mark.parametrize("command", ["check", "get", "forget", "lifecycle"])
def test_a_url_given_as_a_word_is_pointed_at_url_without_echoing_it(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``s3result check s3result+http://KEY:SECRET@host/bucket`` is what a new user types first: the
    answer names --url and the command's own help, and never repeats the URL (it may hold a secret)."""
    argv = [command, "s3result+http://AKIAXXX:s3cr3t@127.0.0.1:9000/bucket/results"]
    if command in ("get", "forget"):
        argv.insert(1, "some-task-id")
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and f"s3result {command}: give the result_backend URL with --url" in err, err
    assert f"(see s3result {command} --help)" in err and "s3cr3t" not in err and "AKIAXXX" not in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--urll=s3result+http://AKIAXXX:s3cr3t@127.0.0.1:9000/bucket/results"],
        ["check", "--url", "s3result://bucket/a", "s3result+http://AKIAXXX:s3cr3t@127.0.0.1:9000/bucket/b"],
    ],
)
def test_a_mistyped_option_or_a_second_url_is_not_pointed_at_url(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--urll=URL`` is a typo of the option, and a second URL after ``--url`` is one too many:
    telling either to "give the URL with --url" is a wrong fix (it suggested ``--url '--urll=...'``)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("s3result check: unrecognized arguments: "), err
    assert "give the result_backend URL with --url" not in err, err
    assert "s3cr3t" not in err and "AKIAXXX" not in err and "(see s3result check --help)" in err, err


def test_a_word_a_command_does_not_take_points_at_that_commands_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["conformance", "s3result://bucket/results", "extra"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        "s3result conformance: unrecognized arguments: extra (see s3result conformance --help)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "s3result+http://AKIAXXX:s3cr3t@127.0.0.1:9000/bucket?secret_key=s3cr3t"],
        ["s3result+http://AKIAXXX:s3cr3t@127.0.0.1:9000/bucket"],  # the URL where the command goes
        ["check", "--app", "s3result+http://AKIAXXX:s3cr3t@127.0.0.1:9000/bucket"],
    ],
)
def test_a_url_in_the_wrong_place_is_never_echoed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") <= 1, err
    assert "s3cr3t" not in err and "AKIAXXX" not in err, err


def test_conformance_takes_its_url_either_way(capsys: pytest.CaptureFixture[str]) -> None:
    """``s3result check --url URL`` is the form a user learns first; conformance takes it too, once."""
    from s3result.cli.main import _parser

    args = _parser().parse_args(["conformance", "--url", "s3result://bucket/p"])
    assert args.url_option == "s3result://bucket/p" and args.url is None
    code = main(["conformance", "s3result://bucket/p", "--url", "s3result://bucket/q"])
    assert code == 2 and "give the URL once" in capsys.readouterr().err
