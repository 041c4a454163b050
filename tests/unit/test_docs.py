"""docs/cli.md is what the parser says today (regenerate it with `make docs`)."""

from __future__ import annotations

from _helpers import cli_subcommands

from dagvault_cli.reference import PAGE, render


def test_the_cli_reference_is_generated_from_the_current_parser() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), "docs/cli.md is stale: run `make docs`"


def test_the_cli_reference_documents_every_command_and_flag() -> None:
    page = render()
    for name in cli_subcommands():
        assert f"## dagvault {name}\n" in page
    for flag in ("--allow-decrease", "--keep-daily", "--replicate-to", "--no-pre-restore-backup"):
        assert f"`{flag}`" in page
