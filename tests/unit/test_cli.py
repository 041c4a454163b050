"""The `dagvault` command as a user runs it: a real subprocess per command, the session's
real Prefect server, real SQLite files in tmp_path.

Each command that runs a flow costs several seconds (Prefect's import and the flow run;
more with the data-quality gate), so the scenarios below chain many checks per test.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_cli.py."""

from __future__ import annotations

from pathlib import Path

from _shared.cli import SUBCOMMANDS

PROJECT = Path(__file__).resolve().parents[2]


def test_every_subcommand_is_documented_in_the_command_guide() -> None:
    guide = (PROJECT / "docs" / "commands.md").read_text(encoding="utf-8")
    missing = [name for name in SUBCOMMANDS if f"dagvault {name}" not in guide]
    assert missing == []
