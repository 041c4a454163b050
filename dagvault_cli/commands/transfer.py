"""Data out of and into the ledger: `export` (a snapshot for analysts or other nodes) and
`import-sql` (a database built from an SQL dump)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dagvault import db
from dagvault.config import EXPORT_FORMATS
from dagvault.crypto import writing_key
from dagvault.errors import BackupNotFound
from dagvault.operations.export import ExportOptions, ExportResult
from dagvault.operations.restore import ImportOptions, ImportResult
from dagvault_cli.commands._common import (
    json_printed,
    options_from,
    print_gate,
    require_backup,
    settings_from,
)
from dagvault_cli.flags import DB_HELP, KEY_HELP, REPORTS_HELP, Subparsers, command
from dagvault_cli.handoff import run_operation
from dagvault_cli.output import human_bytes, progress_bar, table


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "export",
        export,
        "Export a consistent snapshot (live database or a backup) for analysts or other nodes.",
        "dagvault export --format parquet --out ./exports/ledger",
    )
    p.add_argument("--format", choices=EXPORT_FORMATS, help="DEFAULT_EXPORT_FORMAT (sql)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--db", help=DB_HELP)
    source.add_argument(
        "--from", dest="from_backup", metavar="BACKUP", help="export a backup (or TARGET_URL/NAME)"
    )
    p.add_argument("--key-file", help=KEY_HELP)
    p.add_argument(
        "--encrypt",
        action="store_true",
        help="encrypt the exported files (FILE.enc, AES-256-GCM; `dagvault decrypt` reads them)",
    )
    p.add_argument("--out", help="target: PATH.sql for sql, a new directory otherwise")
    p.add_argument("--export-dir", help="where unnamed exports go (EXPORT_DIR, ./exports)")
    p.add_argument("--tables", help="comma-separated tables (default: all)")
    p.add_argument(
        "--no-quality", action="store_true", help="skip the export gate (DuckDB row counts)"
    )
    p.add_argument("--reports-dir", help=REPORTS_HELP)

    p = command(
        subparsers,
        "import-sql",
        import_sql,
        "Replace the database with one built from an SQL dump (checked, pre-import backup).",
        "dagvault import-sql ./exports/blockchain.sql --db ./blockchain.db",
    )
    p.add_argument("file", help="the SQL dump")
    p.add_argument("--db", help=DB_HELP + "; may be a new file")
    p.add_argument(
        "--no-pre-import-backup", action="store_true", help="do not keep the current database"
    )


def export(args: argparse.Namespace) -> int:
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    options = options_from(
        ExportOptions,
        args,
        fmt=args.format,
        backup_path=args.from_backup,
        tables=tables,
        quality=not args.no_quality,
    )
    settings = settings_from(
        args,
        database_path=args.db,
        export_dir=args.export_dir,
        default_export_format=args.format,
        reports_dir=args.reports_dir,
        encryption_key_file=args.key_file,
    )
    if args.from_backup is not None:
        require_backup(args.from_backup, settings)
    writing_key(args.encrypt, settings.encryption_key_file)  # fail fast
    if args.from_backup is None:
        db.require_file(settings.database_path)
    result: ExportResult = run_operation(
        "export",
        options,
        out=args.out,
        encrypt=args.encrypt,
        config_file=args.config,
        settings=settings,
    )
    if json_printed(args, result):
        return 0
    print(
        f"Exported {result.format} to {result.export_path} "
        f"({human_bytes(result.total_bytes)}); manifest: {result.manifest_path}"
    )
    print(table(sorted(result.row_counts.items()), ["table", "rows"]))
    print_gate(result.quality)
    if result.encrypted:
        print("   encrypted: the data files end in .enc; `dagvault decrypt FILE` reads them")
    return 0


def import_sql(args: argparse.Namespace) -> int:
    options = options_from(
        ImportOptions,
        args,
        sql_path=args.file,
        create_pre_import_backup=False if args.no_pre_import_backup else None,
    )
    settings = settings_from(args, database_path=args.db)
    if not Path(args.file).is_file():
        raise BackupNotFound(f"SQL dump {args.file} does not exist", "Check the path.")
    with progress_bar(not args.json):
        result: ImportResult = run_operation(
            "import-sql", options, config_file=args.config, settings=settings
        )
    if json_printed(args, result):
        return 0
    print(f"✅ Database {result.database_path} imported from {args.file}")
    print(table(sorted(result.row_counts.items()), ["table", "rows"]))
    if result.pre_import_backup:
        print(f"pre-import backup: {result.pre_import_backup}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0
