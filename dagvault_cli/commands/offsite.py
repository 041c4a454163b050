"""Off-site copies: `replicate` (bring each replica up to date)."""

from __future__ import annotations

import argparse

from dagvault.operations.replicate import ReplicateOptions, ReplicateResult
from dagvault_cli.commands._common import json_printed, options_from, settings_from
from dagvault_cli.flags import Subparsers, command, encryption_options
from dagvault_cli.handoff import run_operation
from dagvault_cli.output import human_bytes, table


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "replicate",
        replicate,
        "Copy the backups each replica lacks (oldest first) and report how far it lags.",
        "dagvault replicate --to s3://my-bucket/node-1 --to file:///mnt/disk2/backups",
    )
    p.add_argument(
        "--to",
        action="append",
        metavar="URL",
        help="a target (repeatable; default backup.replicas / BACKUP_REPLICAS)",
    )
    p.add_argument("--backup-dir", help="the local backup directory (BACKUP_DIR)")
    p.add_argument(
        "--bandwidth-limit",
        metavar="BYTES_PER_S",
        help="upload at most this many bytes per second on average, e.g. 10M or 512K (KiB, "
        "MiB, GiB; DAGVAULT_BANDWIDTH_LIMIT; default: no limit)",
    )
    encryption_options(p)


def replicate(args: argparse.Namespace) -> int:
    options = options_from(ReplicateOptions, args, targets=args.to)
    settings = settings_from(
        args,
        backup_dir=args.backup_dir,
        replicas=args.to,
        encryption_enabled=args.encrypt,
        encryption_key_file=args.key_file,
        bandwidth_limit=options.bandwidth_limit,
    )
    result: ReplicateResult = run_operation(
        "replicate", options, config_file=args.config, settings=settings
    )
    if json_printed(args, result):
        return 0
    rows = [
        (
            r.target,
            len(r.copied),
            human_bytes(r.bytes_copied),
            r.missing,
            "-" if r.lag_seconds is None else f"{r.lag_seconds} s",
        )
        for r in result.root
    ]
    print(table(rows, ["target", "copied", "bytes", "missing", "lag"]))
    return 0
