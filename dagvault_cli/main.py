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
from collections.abc import Callable, Sequence

from dagvault import permissions
from dagvault.backup import BACKUP_KINDS
from dagvault.config import EXPORT_FORMATS
from dagvault.errors import EXIT_CODES, ConfigError, DagvaultError
from dagvault.presets import PRESETS
from dagvault_cli import commands, production, watch
from dagvault_cli.output import log_to_terminal
from dagvault_cli.service import control as service

EPILOG = "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
TOP_EXAMPLES = """examples:
  dagvault backup --description 'before upgrade'   # then: dagvault verify --all
  dagvault restore ./backups/blockchain_1704067200.db --db ./scratch.db
  dagvault COMMAND --help                           # each command's options and example
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}", f"See `{self.prog} --help`.")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (1-65535), got {text!r}")
    return value


def _count(text: str) -> int:
    """A retention rule's count: 0 switches the rule off."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got {text!r}")
    return value


REPORTS_HELP = "where GX Data Docs go (DAGVAULT_REPORTS_DIR, default ./reports)"
KEY_HELP = (
    "file holding the encryption key (DAGVAULT_ENCRYPTION_KEY_FILE; or the key itself in "
    "DAGVAULT_ENCRYPTION_KEY)"
)


def _encryption_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encrypt",
        action="store_true",
        default=None,
        help="encrypt the copies at storage targets, AES-256-GCM (BACKUP_ENCRYPTION_ENABLED)",
    )
    p.add_argument("--key-file", help=KEY_HELP)


def _quality_options(p: argparse.ArgumentParser, *, gate_by_default: bool) -> None:
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


def build_parser() -> argparse.ArgumentParser:
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

    parser = _Parser(
        prog="dagvault",
        description=__doc__,
        epilog=f"{TOP_EXAMPLES}\n{EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str, example: str):  # type: ignore[no-untyped-def]
        p = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=f"{help_text}\n\nexample:\n  {example}",
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    db_help = "the ledger database (DATABASE_PATH, default ./blockchain.db)"
    pre_restore_db_help = "the database whose pre-restore backups (beside it) count too " + (
        "(DATABASE_PATH, default ./blockchain.db)"
    )
    dir_help = (
        "the backup directory or a storage target URL: s3://bucket/prefix, gs://…, "
        "file:///dir (BACKUP_DIR, default ./backups)"
    )

    p = command(
        "backup",
        commands.backup,
        "Take a consistent backup of the live database, verify it, run the quality gate.",
        "dagvault backup --db ./blockchain.db --backup-dir ./backups --description 'weekly'",
    )
    p.add_argument("--db", help=db_help)
    p.add_argument("--backup-dir", help=dir_help)
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
    _encryption_options(p)
    _quality_options(p, gate_by_default=True)

    p = command(
        "verify",
        commands.verify,
        "Verify backups: SHA3-256 checksum, metadata, PRAGMA integrity_check, row counts.",
        "dagvault verify --all --backup-dir ./backups",
    )
    p.add_argument("backup", nargs="?", help="the backup file (or TARGET_URL/NAME) to verify")
    p.add_argument("--key-file", help=KEY_HELP)
    p.add_argument("--all", action="store_true", help="verify every backup of the directory")
    p.add_argument("--backup-dir", help=dir_help)
    p.add_argument("--quick", action="store_true", help="PRAGMA quick_check (faster, O(N))")
    p.add_argument(
        "--sign-legacy",
        action="store_true",
        help="admit a genuine backup taken before the key was configured: verify it and "
        "its chain, then add their authentication tags (needs the key; docs/security.md)",
    )
    _quality_options(p, gate_by_default=False)

    p = command(
        "list",
        commands.list_,
        "List backups, newest first; files without metadata are flagged.",
        "dagvault list --limit 10 --json",
    )
    p.add_argument("--backup-dir", help=dir_help)
    p.add_argument("--db", help=pre_restore_db_help)
    p.add_argument("--limit", type=_positive_int, help="show at most N backups")

    p = command(
        "cleanup",
        commands.cleanup,
        "Remove all but the newest N backups (never the newest verified one).",
        "dagvault cleanup --keep 7 --dry-run",
    )
    p.add_argument("--keep", type=_positive_int, help="backups to keep (BACKUP_RETENTION_COUNT)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")
    p.add_argument("--backup-dir", help=dir_help)
    p.add_argument("--db", help=pre_restore_db_help)

    p = command(
        "prune",
        commands.prune,
        "Apply restic-style retention rules (OR-combined, chain-aware; never the newest "
        "verified full backup).",
        "dagvault prune --keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run",
    )
    p.add_argument(
        "--keep-last",
        type=_count,
        metavar="N",
        help="keep the N newest (default BACKUP_RETENTION_COUNT when no rule is given)",
    )
    for unit, bucket in (
        ("hourly", "hour"),
        ("daily", "day"),
        ("weekly", "ISO week"),
        ("monthly", "month"),
    ):
        p.add_argument(
            f"--keep-{unit}",
            type=_count,
            metavar="N",
            help=f"newest backup of each of the N latest {bucket}s that have one (UTC)",
        )
    p.add_argument(
        "--by-schedule",
        action="store_true",
        help="with no rule: keep the newest backup of each of the last BACKUP_RETENTION_COUNT "
        "periods of BACKUP_INTERVAL_HOURS (the presets' retention; the prune deployment's)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")
    p.add_argument("--backup-dir", help=dir_help)
    p.add_argument("--db", help=pre_restore_db_help)

    p = command(
        "replicate",
        commands.replicate,
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
    _encryption_options(p)

    p = command(
        "keygen",
        commands.keygen,
        "Write a new random encryption key (64 hex digits, mode 0600). Keep a copy off the "
        "node: without it, encrypted backups cannot be read.",
        "dagvault keygen /etc/dagvault/backup.key",
    )
    p.add_argument("path", help="the key file to create (never overwritten)")

    p = command(
        "decrypt",
        commands.decrypt,
        "Decrypt a file written with --encrypt (an export file, or a backup object copied "
        "from a target) into a new plain file.",
        "dagvault decrypt ./exports/blockchain.sql.enc --out ./blockchain.sql --key-file k",
    )
    p.add_argument("file", help="the encrypted file")
    p.add_argument("--out", required=True, help="the plain file to create (never overwritten)")
    p.add_argument("--key-file", help=KEY_HELP)

    p = command(
        "schedule",
        commands.schedule,
        "Show when the next backup is due; with --run-if-due, take it when due.",
        "dagvault schedule --interval-hours 24 --run-if-due",
    )
    p.add_argument("--db", help=db_help)
    p.add_argument("--backup-dir", help=dir_help)
    p.add_argument("--interval-hours", type=_positive_int, help="BACKUP_INTERVAL_HOURS")
    p.add_argument("--run-if-due", action="store_true", help="take the backup if it is due")

    p = command(
        "health",
        commands.health,
        "Check the node's backup health (GET /health): exit 0 when ok, 8 when degraded.",
        "dagvault health --json",
    )
    p.add_argument("--db", help=db_help)
    p.add_argument("--backup-dir", help=dir_help)

    p = command(
        "restore",
        commands.restore,
        "Restore a backup into the database: verify, pre-restore backup, atomic copy, check.",
        "dagvault restore ./backups/blockchain_1704067200.db --db ./blockchain.db",
    )
    p.add_argument("backup", help="the backup file to restore, or TARGET_URL/NAME")
    p.add_argument("--key-file", help=KEY_HELP)
    p.add_argument("--db", help=db_help + "; may be a new file")
    p.add_argument(
        "--no-pre-restore-backup",
        action="store_true",
        help="do not keep a copy of the current database (CREATE_PRE_RESTORE_BACKUP)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip verifying the backup first")
    p.add_argument(
        "--allow-schema-change",
        action="store_true",
        help="without a key: restore even though the backup adds or changes triggers or "
        "views, or drops tables or triggers (written to the audit log beside the database)",
    )
    p.add_argument(
        "--allow-gate-failed",
        action="store_true",
        help="restore a backup whose data-quality gate failed (to investigate its data)",
    )

    p = command(
        "export",
        commands.export,
        "Export a consistent snapshot (live database or a backup) for analysts or other nodes.",
        "dagvault export --format parquet --out ./exports/ledger",
    )
    p.add_argument("--format", choices=EXPORT_FORMATS, help="DEFAULT_EXPORT_FORMAT (sql)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--db", help=db_help)
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
        "import-sql",
        commands.import_sql,
        "Replace the database with one built from an SQL dump (checked, pre-import backup).",
        "dagvault import-sql ./exports/blockchain.sql --db ./blockchain.db",
    )
    p.add_argument("file", help="the SQL dump")
    p.add_argument("--db", help=db_help + "; may be a new file")
    p.add_argument(
        "--no-pre-import-backup", action="store_true", help="do not keep the current database"
    )

    p = command(
        "api",
        commands.api,
        "Serve the HTTP API (backup, restore, list, export, verify, cleanup, schedule, health, "
        "metrics). Mutating endpoints need the token of DAGVAULT_API_TOKEN_FILE (a file only "
        "its owner can read; or DAGVAULT_API_TOKEN) when one is set; without it only "
        "loopback addresses are allowed.",
        "DAGVAULT_API_TOKEN_FILE=/etc/dagvault/api-token dagvault api --host 0.0.0.0 --port 8080",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=_port, default=8080, help="TCP port (8080)")
    p.add_argument(
        "--audit-log",
        metavar="FILE",
        help="JSON-lines audit log (DAGVAULT_AUDIT_LOG, default ./dagvault-audit.jsonl)",
    )

    p = command(
        "sample-ledger",
        commands.sample_ledger,
        "Write a realistic WAL-mode sample ledger of a post-quantum DAG chain.",
        "dagvault sample-ledger ./blockchain.db --transactions 200000 --seed 7",
    )
    p.add_argument("path", help="the database file to create")
    p.add_argument("--transactions", type=_positive_int, required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--nodes", type=_positive_int, default=64)
    p.add_argument("--append", action="store_true", help="add transactions to an existing one")
    p = command(
        "fleet-backup",
        production.fleet_backup,
        "Back up many ledgers (one per node) in parallel, each into BACKUP_DIR/<label>; "
        "one node's failure does not stop the others.",
        "dagvault fleet-backup --glob '/srv/nodes/*/blockchain.db' --task-runner dask "
        "--dask-address tcp://10.0.0.5:8786",
    )
    p.add_argument("ledgers", nargs="*", help="ledger files (with or instead of --glob)")
    p.add_argument("--glob", help="a pattern matching the ledgers ('**' recurses)")
    p.add_argument("--backup-dir", help="the root of the nodes' backup directories (BACKUP_DIR)")
    p.add_argument(
        "--type", dest="backup_type", type=str.lower, choices=BACKUP_KINDS, default="full"
    )
    p.add_argument("--no-quality", action="store_true", help="skip the data-quality gates")
    p.add_argument(
        "--task-runner",
        choices=("default", "dask"),
        default="default",
        help="default: threads in this process; dask: a Dask cluster",
    )
    p.add_argument(
        "--dask-address",
        help="the Dask scheduler (tcp://HOST:8786); without it, a local Dask cluster",
    )

    p = command(
        "serve-deployments",
        production.serve_deployments,
        "Serve the deployments of deployments/prefect.yaml from this process (no work pool) "
        "until stopped; needs PREFECT_API_URL.",
        "PREFECT_API_URL=http://127.0.0.1:4200/api dagvault serve-deployments --preset critical",
    )
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="a recommended schedule and retention (BACKUP_PRESET; docs/production.md)",
    )
    service.add_commands(command, port=_port)
    watch.register(sub, parents=[common])
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
        return int(args.func(args))
    except DagvaultError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        print("Interrupted; nothing half-written is left behind.", file=sys.stderr)
        return 130
