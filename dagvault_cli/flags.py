"""What the command modules build their flags from: the flags every command takes, one
sub-command's parser, the value types, and the help texts and flag groups several
commands share (so a flag reads the same on every command that has it)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from dagvault.errors import EXIT_CODES

Handler = Callable[[argparse.Namespace], int]
Subparsers = Any  # argparse's private _SubParsersAction: what add_subparsers() returns

EPILOG = "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())

DB_HELP = "the ledger database (DATABASE_PATH, default ./blockchain.db)"
PRE_RESTORE_DB_HELP = "the database whose pre-restore backups (beside it) count too " + (
    "(DATABASE_PATH, default ./blockchain.db)"
)
DIR_HELP = (
    "the backup directory or a storage target URL: s3://bucket/prefix, gs://…, "
    "file:///dir (BACKUP_DIR, default ./backups)"
)
REPORTS_HELP = "where GX Data Docs go (DAGVAULT_REPORTS_DIR, default ./reports)"
KEY_HELP = (
    "file holding the encryption key (DAGVAULT_ENCRYPTION_KEY_FILE; or the key itself in "
    "DAGVAULT_ENCRYPTION_KEY)"
)


def _common_flags() -> argparse.ArgumentParser:
    """The flags every command takes (a parent of each sub-command's parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="JSON config file (or DAGVAULT_CONFIG)")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print Prefect's log lines of each flow and task run (the run history "
        "keeps them either way)",
    )
    return common


def command(
    subparsers: Subparsers, name: str, handler: Handler, help_text: str, example: str
) -> argparse.ArgumentParser:
    """A sub-command with the common flags, its example and the exit codes in its --help;
    ``main`` calls ``handler`` with the parsed flags."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        name,
        parents=[_common_flags()],
        help=help_text,
        description=f"{help_text}\n\nexample:\n  {example}",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=handler)
    return p


def _whole_number(
    expected: str, low: int, high: int | None = None, in_range: str | None = None
) -> Callable[[str], int]:
    """A flag's type: a whole number from ``low`` to ``high``; argparse's message for
    anything else says what was expected (``in_range`` for a number out of range)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {in_range or expected}, got {text!r}")
        return value

    return parse


positive_int = _whole_number("a positive integer", 1)
port = _whole_number("a TCP port", 1, 65535, "a TCP port (1-65535)")
count = _whole_number("a whole number ≥ 0", 0)  # a retention rule's count: 0 switches it off


def encryption_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encrypt",
        action="store_true",
        default=None,
        help="encrypt the copies at storage targets, AES-256-GCM (BACKUP_ENCRYPTION_ENABLED)",
    )
    p.add_argument("--key-file", help=KEY_HELP)


def quality_options(p: argparse.ArgumentParser, *, gate_by_default: bool) -> None:
    if gate_by_default:
        p.add_argument("--no-quality", action="store_true", help="skip the data-quality gate (GX)")
    else:
        p.add_argument(
            "--quality",
            action="store_true",
            help="also run the data-quality gate (GX expectations on the ledger's data)",
        )
    p.add_argument(
        "--allow-decrease",
        action="store_true",
        help="accept fewer transactions than the previous backup or the last restore/import "
        "(a pruned or reset ledger; DAGVAULT_ALLOW_DECREASE)",
    )
    p.add_argument("--reports-dir", help=REPORTS_HELP)
