"""dagvault — backup, recovery and export of a DAG ledger's SQLite database.

Every operation that changes something runs as a Prefect flow, so ad-hoc runs appear
in the run history next to scheduled ones. Set PREFECT_API_URL to a running Prefect
server (`prefect server start`) to see them in its UI; without it, Prefect starts a
temporary local server for the run (adds about 10 s).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from functools import partial

from dagvault import permissions
from dagvault.errors import ConfigError, DagvaultError
from dagvault_cli.commands import (
    backup,
    drill,
    keys,
    monitoring,
    node,
    offsite,
    production,
    report,
    restore,
    retention,
    transfer,
    watch,
)
from dagvault_cli.flags import EPILOG, command, port
from dagvault_cli.output import log_to_terminal
from dagvault_cli.service import control as service

TOP_EXAMPLES = """examples:
  dagvault backup --description 'before upgrade'   # then: dagvault verify --all
  dagvault restore ./backups/blockchain_1704067200.db --db ./scratch.db
  dagvault COMMAND --help                           # each command's options and example
"""
# Each group's register() adds its commands: in this order they appear in --help and docs/cli.md.
GROUPS = (
    backup,
    retention,
    offsite,
    keys,
    monitoring,
    restore,
    drill,
    report,
    watch,
    transfer,
    node,
    production,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}", f"See `{self.prog} --help`.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dagvault",
        description=__doc__,
        epilog=f"{TOP_EXAMPLES}\n{EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    service.add_commands(partial(command, sub), port=port)
    return parser


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
        args = build_parser().parse_args(argv)
        log_to_terminal(args.verbose)
        return int(args.handler(args))
    except DagvaultError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        print("Interrupted; nothing half-written is left behind.", file=sys.stderr)
        return 130
