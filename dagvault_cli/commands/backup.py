"""Taking, verifying and listing backups: `backup`, `verify`, `list`."""

from __future__ import annotations

import argparse
from typing import Any

from dagvault import db, events
from dagvault.backup import BACKUP_KINDS, validate_name
from dagvault.config import Settings
from dagvault.crypto import load_key, require_key, writing_key
from dagvault.errors import (
    BackupsFailedQualityGate,
    BackupsFailedVerification,
    ConfigError,
    DagvaultError,
)
from dagvault.operations import BackupOptions, BackupResult
from dagvault.operations.verify import VerifyOptions, VerifyResult
from dagvault.storage.backup_store import stored_backup
from dagvault_cli.commands._common import (
    json_printed,
    options_from,
    print_gate,
    require_backup,
    settings_from,
)
from dagvault_cli.flags import (
    DB_HELP,
    DIR_HELP,
    KEY_HELP,
    Subparsers,
    command,
    encryption_options,
    quality_options,
)
from dagvault_cli.handoff import run_operation
from dagvault_cli.output import human_bytes, progress_bar, table


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "backup",
        backup,
        "Take a consistent backup of the live database, verify it, run the quality gate.",
        "dagvault backup --db ./blockchain.db --backup-dir ./backups --description 'weekly'",
    )
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--backup-dir", help=DIR_HELP)
    p.add_argument("--name", help="file name prefix (default: the database file's stem)")
    p.add_argument(
        "--description", default="", help="free text stored in the .meta file (≤ 1000 characters)"
    )
    p.add_argument("--no-verify", action="store_true", help="skip the integrity check after")
    p.add_argument(
        "--type",
        dest="backup_type",
        type=str.lower,  # the documented "Full", "Incremental", "Differential" too
        choices=BACKUP_KINDS,
        default="full",
        help="full; incremental (pages changed since the newest backup); differential "
        "(since the newest full). A delta without a usable base becomes a full backup.",
    )
    p.add_argument(
        "--compress",
        action="store_true",
        default=None,
        help="zstd-compress the stored file (BACKUP_COMPRESSION_ENABLED)",
    )
    p.add_argument(
        "--replicate-to",
        action="append",
        metavar="URL",
        help="also bring this target up to date afterwards (repeatable; adds to "
        "backup.replicas / BACKUP_REPLICAS)",
    )
    encryption_options(p)
    quality_options(p, gate_by_default=True)

    p = command(
        subparsers,
        "verify",
        verify,
        "Verify backups: SHA3-256 checksum, metadata, PRAGMA integrity_check, row counts.",
        "dagvault verify --all --backup-dir ./backups",
    )
    p.add_argument("backup", nargs="?", help="the backup file (or TARGET_URL/NAME) to verify")
    p.add_argument("--key-file", help=KEY_HELP)
    p.add_argument("--all", action="store_true", help="verify every backup of the directory")
    p.add_argument("--backup-dir", help=DIR_HELP)
    p.add_argument("--quick", action="store_true", help="PRAGMA quick_check (faster, O(N))")
    p.add_argument(
        "--sign-legacy",
        action="store_true",
        help="admit a genuine backup taken before the key was configured: verify it and "
        "its chain, then add their authentication tags (needs the key; docs/security.md)",
    )
    quality_options(p, gate_by_default=False)


def backup(args: argparse.Namespace) -> int:
    with events.failing_backup():  # fail fast, before a flow run starts; ❌ as in a run
        options = options_from(
            BackupOptions,
            args,
            verify=not args.no_verify,
            quality=not args.no_quality,
            allow_decrease=args.allow_decrease or None,  # unset: DAGVAULT_ALLOW_DECREASE
        )
        settings = settings_from(
            args,
            database_path=args.db,
            backup_dir=args.backup_dir,
            reports_dir=args.reports_dir,
            encryption_enabled=args.encrypt,
            encryption_key_file=args.key_file,
        )
        writing_key(settings.encryption_enabled, settings.encryption_key_file)
        if args.name is not None:
            validate_name(args.name)
        db.require_file(settings.database_path)
    with progress_bar(not args.json):
        info: BackupResult = run_operation(
            "backup",
            options,
            name=args.name,
            replicate_to=args.replicate_to,
            config_file=args.config,
            settings=settings,
        )
    if json_printed(args, info):
        return 0
    print(f"📦 {info.backup_type} backup created: {info.backup_path}")
    for target in info.replicas:
        print(f"   replicated to {target}")
    reason = info.metadata.get("full_backup_reason")
    if reason and options.backup_type != "Full":
        print(f"   full instead of {args.backup_type}: {reason}")
    if info.metadata.get("parent"):
        print(
            f"   parent: {info.metadata['parent']}, {info.metadata['changed_pages']} changed pages"
        )
    print(
        f"   size {human_bytes(info.file_size)}, {info.total_transactions} "
        f"transactions, {info.total_nodes} nodes, "
        f"verification: {info.verification['status']}"
    )
    print(f"   SHA3-256 {info.checksum}")
    print_gate(info.quality)
    return 0


def verify(args: argparse.Namespace) -> int:
    if args.all == (args.backup is not None):
        raise ConfigError(
            "Name one backup to verify, or pass --all", "dagvault verify BACKUP | --all"
        )
    options = options_from(
        VerifyOptions,
        args,
        backup_path=args.backup,
        all_backups=args.all,
        allow_decrease=args.allow_decrease or None,  # unset: DAGVAULT_ALLOW_DECREASE
    )
    settings = settings_from(
        args,
        backup_dir=args.backup_dir,
        reports_dir=args.reports_dir,
        encryption_key_file=args.key_file,
    )
    if args.backup is not None:
        require_backup(args.backup, settings)
    if args.sign_legacy:
        _sign_legacy(args, settings)  # then the verify below proves the new tags
    failure: DagvaultError | None = None
    try:
        result: VerifyResult = run_operation(
            "verify", options, config_file=args.config, settings=settings
        )
    except DagvaultError as exc:
        failure = exc
        # The valid backups' reports too, not just the error.
        reports = (
            exc.reports
            if isinstance(exc, BackupsFailedVerification | BackupsFailedQualityGate)
            else []
        )
        result = VerifyResult(valid=False, reports=reports, error=exc.message)
    if not json_printed(args, result) and result.reports:
        rows = [
            (
                r["backup_path"],
                "valid" if r["valid"] else "INVALID",
                "; ".join(r["problems"]) or "-",
                *([_gate_cell(r.get("quality"))] if args.quality else []),
            )
            for r in result.reports
        ]
        headers = ["backup", "result", "problems", *(["quality"] if args.quality else [])]
        print(table(rows, headers))
        docs = {r["quality"]["data_docs"] for r in result.reports if r.get("quality")} - {None}
        for index in sorted(docs):
            print(f"GX Data Docs: {index}")
    if failure is not None:
        raise failure
    return 0


def _sign_legacy(args: argparse.Namespace, settings: Settings) -> None:
    if args.backup is None:
        raise ConfigError(
            "--sign-legacy signs one backup (and its chain)",
            "dagvault verify --sign-legacy ./backups/NAME.db --key-file KEY",
        )
    key = require_key(load_key(settings.encryption_key_file), "--sign-legacy")
    for where in stored_backup(args.backup).sign_legacy(key, settings.staging_dir):
        if not args.json:
            print(f"signed {where}")


def _gate_cell(gate: dict[str, Any] | None) -> str:
    if gate is None:
        return "not run"
    if gate["passed"]:
        return "passed"
    return "FAILED: " + ", ".join(e["name"] for e in gate["expectations"] if not e["success"])
