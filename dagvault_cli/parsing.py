"""What every sub-command's parser shares, for build_parser and the command modules that
``register(subparsers)`` their own sub-command (dagvault_cli/drill.py)."""

from __future__ import annotations

import argparse

from dagvault.errors import EXIT_CODES

EPILOG = "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


def common_options() -> argparse.ArgumentParser:
    """The parent parser of every sub-command: --config, --json, -v."""
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


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    example: str,
) -> argparse.ArgumentParser:
    """A sub-command's parser with the common options, its help and example."""
    return subparsers.add_parser(
        name,
        parents=[common_options()],
        help=help_text,
        description=f"{help_text}\n\nexample:\n  {example}",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
