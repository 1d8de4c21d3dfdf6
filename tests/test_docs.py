"""The docs keep up with the code: every option, environment variable and flag is documented.

Read from the code (config's option table, the environment variables s3result reads, the
command's argparse parsers) and compared to the pages of docs/; a failure names what is missing.
The site itself is built with warnings as errors by scripts/test (`mkdocs build --strict`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from s3result.cli.main import _parser
from s3result.results.options import ALIASES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _page(name: str) -> str:
    return (DOCS / name).read_text()


def _user_pages() -> dict[Path, str]:
    pages = {p: p.read_text() for p in DOCS.rglob("*.md") if "_new" not in p.relative_to(DOCS).parts}
    pages[ROOT / "README.md"] = (ROOT / "README.md").read_text()
    return pages


def test_every_option_and_alias_is_in_the_configuration_reference() -> None:
    page = _page("configuration.md")
    names = {name for key, aliases in ALIASES.items() for name in (key, *aliases)}
    missing = sorted(n for n in names if f"`{n}`" not in page)
    assert not missing, f"docs/configuration.md does not document these options: {missing}"
    # Each option has its own paragraph (a heading naming it), not only a table row.
    headings = " ".join(re.findall(r"^### (.+)$", page, re.M))
    undescribed = sorted(k for k in ALIASES if not re.search(rf"\b{k}\b", headings))
    assert not undescribed, f"docs/configuration.md has no paragraph (### heading) for: {undescribed}"


def _environment_variables() -> set[str]:
    """The variables s3result reads: the names its code passes to os.environ / environ.get / getenv."""
    found: set[str] = set()
    for path in (ROOT / "s3result").rglob("*.py"):
        found |= set(re.findall(r"[\"']((?:AWS|S3RESULT|SSL)_[A-Z0-9_]+)[\"']", path.read_text()))
    return found


def test_the_variables_read_are_found() -> None:
    """The scan itself: a few names it must see, or it finds nothing and the test below proves nothing."""
    assert {"AWS_REGION", "AWS_ENDPOINT_URL_S3", "S3RESULT_URL", "AWS_CA_BUNDLE"} <= _environment_variables()


def test_every_environment_variable_is_in_the_configuration_reference() -> None:
    page = _page("configuration.md")
    section = page.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    missing = sorted(v for v in _environment_variables() if f"`{v}`" not in section)
    assert not missing, f"docs/configuration.md's 'Environment variables' table lacks: {missing}"


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_and_flag_is_in_the_cli_page() -> None:
    page = _page("cli.md")
    missing = []
    for name, command in _commands().items():
        parts = page.split(f"\n## s3result {name}\n", 1)
        if len(parts) == 1:
            missing.append(f"s3result {name}: no '## s3result {name}' section")
            continue
        section = parts[1].split("\n## ", 1)[0]
        for action in command._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help") and f"`{flag}" not in section:
                    missing.append(f"s3result {name} {flag}")
    top = [flag for a in _parser()._actions for flag in a.option_strings if flag not in ("-h", "--help")]
    missing += [f"s3result {flag}" for flag in top if f"`s3result {flag}`" not in page and flag not in page]
    assert not missing, f"docs/cli.md does not document: {missing}"


def test_the_readme_is_short_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n") <= 250, f"README.md has {readme.count(chr(10))} lines; the rest belongs in docs/"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_the_readme_keeps_its_two_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m venv .venv && .venv/bin/pip install -q -e '.[demo]' && .venv/bin/s3result demo" in readme
    assert "bash scripts/test" in readme and (ROOT / "scripts" / "test").exists()


HISTORY = re.compile(r"\bissue \d+|\ba review\b|\bin review\b|before the fix|\bused to\b|\bno longer\b", re.I)


def test_user_docs_hold_no_project_history() -> None:
    """History belongs in CHANGELOG.md: the pages say what is true now."""
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)!r}"
        for path, text in _user_pages().items()
        for match in HISTORY.finditer(text)
    ]
    assert not found, found


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_new" not in p.parts]
    assert sorted(p for p in pages if f": {p}" not in nav) == []
