"""The `dagvault` command as a user runs it: a real subprocess per command, the session's
real Prefect server, real SQLite files in tmp_path.

Each command that runs a flow costs several seconds (Prefect's import and the flow run;
more with the data-quality gate), so the scenarios below chain many checks per test.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_cli.py."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from _shared.cli import SUBCOMMANDS

from dagvault.errors import EXIT_CODES
from dagvault_cli.main import build_parser

PROJECT = Path(__file__).resolve().parents[2]


def test_every_subcommand_is_documented_in_the_command_guide() -> None:
    guide = (PROJECT / "docs" / "commands.md").read_text(encoding="utf-8")
    missing = [name for name in SUBCOMMANDS if f"dagvault {name}" not in guide]
    assert missing == []


@pytest.mark.parametrize("command", ["", *SUBCOMMANDS])
def test_help_has_an_example_and_the_exit_codes(command: str) -> None:
    # In this process: `--help` is the parser's own output and exit (a `dagvault --help`
    # subprocess per command cost half a second each and proved nothing more).
    assert {"backup", "verify", "list", "cleanup", "schedule", "restore"} <= set(SUBCOMMANDS)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*([command] if command else []), "--help"])
    assert exited.value.code == 0
    text = stdout.getvalue()
    assert "example" in text.lower()
    assert "exit codes:" in text
    for code, description in EXIT_CODES.items():
        assert f"{code}  {description}" in text
    if not command:
        for name in SUBCOMMANDS:
            assert name in text
