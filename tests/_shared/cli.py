"""Shared by the unit and the integration half of test_cli.py."""

from __future__ import annotations

from _helpers import cli_subcommands

SUBCOMMANDS = cli_subcommands()
