"""dagvault — backup, recovery and export of a DAG ledger's SQLite database.

Every operation that changes something runs as a Prefect flow, so ad-hoc runs appear
in the run history next to scheduled ones. Set PREFECT_API_URL to a running Prefect
server (`prefect server start`) to see them in its UI; without it, Prefect starts a
temporary local server for the run (adds about 10 s).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from functools import partial

from dagvault import permissions
from dagvault.errors import ConfigError, DagvaultError
from dagvault_cli.flags import EPILOG, command, port
from dagvault_cli.output import log_to_terminal

TOP_EXAMPLES = """examples:
  dagvault backup --description 'before upgrade'   # then: dagvault verify --all
  dagvault restore ./backups/blockchain_1704067200.db --db ./scratch.db
  dagvault COMMAND --help                           # each command's options and example
"""
# Each group's register() adds its commands (modules of dagvault_cli.commands): in this order
# they appear in --help and docs/cli.md; the node service's up/status/down come last.
GROUPS = (
    "backup",
    "listing",
    "retention",
    "offsite",
    "keys",
    "monitoring",
    "restore",
    "drill",
    "report",
    "watch",
    "transfer",
    "node",
    "production",
)
SERVICE_COMMANDS = ("up", "status", "down")
# The group of each command. A command's parser loads only its own group: importing every
# group costs each command about 0.3 s (operation models, flows, storage), which is most of
# a `list`. tests/unit/test_cli_groups.py holds this table to what the groups register.
COMMAND_GROUPS = {
    "backup": "backup",
    "verify": "backup",
    "list": "listing",
    "cleanup": "retention",
    "prune": "retention",
    "replicate": "offsite",
    "keygen": "keys",
    "decrypt": "keys",
    "schedule": "monitoring",
    "health": "monitoring",
    "restore": "restore",
    "drill": "drill",
    "report": "report",
    "watch": "watch",
    "export": "transfer",
    "import-sql": "transfer",
    "api": "node",
    "sample-ledger": "node",
    "fleet-backup": "production",
    "serve-deployments": "production",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}", f"See `{self.prog} --help`.")


def build_parser(command_name: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser: every command, or (``command_name`` known) that command's group
    only, which is all a command needs to run."""
    parser = _Parser(
        prog="dagvault",
        description=__doc__,
        epilog=f"{TOP_EXAMPLES}\n{EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    everything = command_name not in COMMAND_GROUPS and command_name not in SERVICE_COMMANDS
    for group in GROUPS:
        if everything or COMMAND_GROUPS.get(command_name or "") == group:
            importlib.import_module(f"dagvault_cli.commands.{group}").register(sub)
    if everything or command_name in SERVICE_COMMANDS:
        from dagvault_cli.service import control

        control.add_commands(partial(command, sub), port=port)
    return parser


def _command_name(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (the CLI has no options before it but --help)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def _report(exc: DagvaultError) -> int:
    print(f"Error: {exc.message}", file=sys.stderr)
    hint = exc.hint_for("cli")
    if hint:
        print(f"Try: {hint}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    # Without PREFECT_API_URL, Prefect starts a temporary server per run; its first start on
    # a new machine (database migrations) can exceed Prefect's default 20 s wait.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    permissions.restrict_process_umask()
    try:
        arguments = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(_command_name(arguments)).parse_args(arguments)
        log_to_terminal(args.verbose)
        return int(args.handler(args))
    except DagvaultError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        print("Interrupted; nothing half-written is left behind.", file=sys.stderr)
        return 130
