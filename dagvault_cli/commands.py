"""One function per subcommand: validate cheaply, run the flow, print the result."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from dagvault import db, events
from dagvault.backup import validate_name
from dagvault.catalog import PRE_RESTORE
from dagvault.config import Settings, load_settings
from dagvault.crypto import (
    generate_key_file,
    load_key,
    require_key,
    writing_key,
)
from dagvault.errors import (
    BackupNotFound,
    BackupsFailedQualityGate,
    BackupsFailedVerification,
    ConfigError,
    DagvaultError,
)
from dagvault.export.seal import decrypt_to
from dagvault.health import DEGRADED_EXIT, check_health
from dagvault.operations import BackupOptions, BackupResult, RestoreOptions, RestoreResult
from dagvault.operations.common import parse_options
from dagvault.operations.export import ExportOptions
from dagvault.operations.replicate import ReplicateOptions
from dagvault.operations.restore import ImportOptions
from dagvault.operations.retention import (
    RETENTION_RULES,
    CleanupOptions,
    PruneOptions,
    RetentionResult,
)
from dagvault.operations.verify import VerifyOptions
from dagvault.presets import prune_policy
from dagvault.retention import RetentionPolicy
from dagvault.storage.backup_store import backup_store, stored_backup
from dagvault_cli.output import emit_json, human_bytes, progress_bar, table
from flows.launcher import run_operation


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(overrides, config_file=args.config)


def _require_backup(backup: str, settings: Settings) -> None:
    """Fail fast, before a flow run starts: a local backup that does not exist, or an
    encrypted object (``….enc``, at a target or in a local directory) and no key (other
    URLs are checked there)."""
    stored_backup(backup).precheck(settings.encryption_key_file)


def _when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "never"


def backup(args: argparse.Namespace) -> int:
    with events.failing_backup():  # fail fast, before a flow run starts; ❌ as in a run
        options = parse_options(
            BackupOptions,
            description=args.description,
            backup_type=args.backup_type,
            compress=args.compress,
            verify=not args.no_verify,
            quality=not args.no_quality,
            allow_decrease=args.allow_decrease or None,  # unset: DAGVAULT_ALLOW_DECREASE
        )
        settings = _settings(
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
    if args.json:
        emit_json(info.document())
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
    _print_gate(info.quality)
    return 0


def _print_gate(gate: dict[str, Any] | None) -> None:
    """One line per gate: its verdict and where its GX Data Docs are."""
    if not gate:
        return
    checks = gate["expectations"]
    passed = sum(e["success"] for e in checks)
    verdict = "passed" if gate["passed"] else "FAILED"
    print(f"   quality gate: {verdict} ({passed} of {len(checks)} expectations)")
    for warning in gate["warnings"]:
        print(f"   warning: {warning}")
    if gate["data_docs"]:
        print(f"   GX Data Docs: {gate['data_docs']}")


def verify(args: argparse.Namespace) -> int:
    if args.all == (args.backup is not None):
        raise ConfigError(
            "Name one backup to verify, or pass --all", "dagvault verify BACKUP | --all"
        )
    options = parse_options(
        VerifyOptions,
        backup_path=args.backup,
        all_backups=args.all,
        quick=args.quick,
        quality=args.quality,
        allow_decrease=args.allow_decrease or None,  # unset: DAGVAULT_ALLOW_DECREASE
    )
    settings = _settings(
        args,
        backup_dir=args.backup_dir,
        reports_dir=args.reports_dir,
        encryption_key_file=args.key_file,
    )
    if args.backup is not None:
        _require_backup(args.backup, settings)
    if args.sign_legacy:
        _sign_legacy(args, settings)  # then the verify below proves the new tags
    reports: list[dict[str, Any]] = []
    failure: DagvaultError | None = None
    try:
        reports = run_operation("verify", options, config_file=args.config, settings=settings)
    except DagvaultError as exc:
        failure = exc
        if isinstance(exc, BackupsFailedVerification | BackupsFailedQualityGate):
            reports = exc.reports  # the valid backups' reports too, not just the error
    if args.json:
        emit_json(
            {
                "valid": failure is None,
                "reports": reports,
                "error": failure.message if failure else None,
            }
        )
    elif reports:
        rows = [
            (
                r["backup_path"],
                "valid" if r["valid"] else "INVALID",
                "; ".join(r["problems"]) or "-",
                *([_gate_cell(r.get("quality"))] if args.quality else []),
            )
            for r in reports
        ]
        headers = ["backup", "result", "problems", *(["quality"] if args.quality else [])]
        print(table(rows, headers))
        docs = {r["quality"]["data_docs"] for r in reports if r.get("quality")} - {None}
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


def list_(args: argparse.Namespace) -> int:
    settings = _settings(args, backup_dir=args.backup_dir, database_path=args.db)
    store = backup_store(settings.backup_dir)
    entries, incomplete = store.listing(settings.database_path, args.limit)
    if args.json:
        emit_json([e.to_json() for e in entries])
        return 0
    for name, why in sorted(incomplete.items()):
        print(f"not a backup (incomplete): {name}: {why}")
    if not entries:
        print(f"No backups in {settings.backup_dir}")
        return 0
    rows = [
        (
            _when(e.timestamp),
            e.path.name,
            (e.info.backup_type if e.info else "?")
            + (" (pre-restore)" if e.kind == PRE_RESTORE else ""),
            (e.info.metadata.get("parent") or "-") if e.info else "-",
            human_bytes(e.file_size),
            e.info.total_transactions if e.info else "?",
            e.info.verification.status if e.info else f"NO METADATA ({e.problem})",
        )
        for e in entries
    ]
    headers = ["created", "backup", "type", "parent", "size", "transactions", "verification"]
    print(table(rows, headers))
    return 0


def _print_freed(result: RetentionResult) -> None:
    """The closing line of cleanup and prune: what was (or would be) removed and freed."""
    if result.dry_run:
        print(
            f"Dry run: would remove {result.removed_backups} backups, "
            f"{human_bytes(result.bytes_freed)} would be freed"
        )
    else:
        print(
            f"🧹 removed {result.removed_backups} backups "
            f"({result.files_removed} files), {human_bytes(result.bytes_freed)} freed"
        )


def cleanup(args: argparse.Namespace) -> int:
    options = parse_options(CleanupOptions, keep=args.keep, dry_run=args.dry_run)
    settings = _settings(
        args, backup_dir=args.backup_dir, retention_count=args.keep, database_path=args.db
    )
    result: RetentionResult = run_operation(
        "cleanup", options, config_file=args.config, settings=settings
    )
    if args.json:
        emit_json(result.document())
        return 0
    rows = [(Path(d["backup_path"]).name, d["action"], d["reason"]) for d in result.decisions]
    if rows:
        print(table(rows, ["backup", "plan", "reason"]))
    _print_freed(result)
    return 0


def prune(args: argparse.Namespace) -> int:
    options = parse_options(
        PruneOptions,
        **{f"keep_{rule}": getattr(args, f"keep_{rule}") for rule in RETENTION_RULES},
        by_schedule=args.by_schedule,
        dry_run=args.dry_run,
    )
    settings = _settings(args, backup_dir=args.backup_dir, database_path=args.db)
    policy = prune_policy(  # fail fast
        RetentionPolicy(*(getattr(options, f"keep_{rule}") for rule in RETENTION_RULES)),
        by_schedule=options.by_schedule,
        interval_hours=settings.interval_hours,
        retention_count=settings.retention_count,
    )
    result: RetentionResult = run_operation(
        "prune", options, config_file=args.config, settings=settings
    )
    if args.json:
        emit_json(result.document())
        return 0
    rows = [
        (Path(d["backup_path"]).name, d["backup_type"], d["action"], d["reason"])
        for d in result.decisions
    ]
    print(f"Policy: {policy.describe()} (UTC calendar buckets)")
    if rows:
        print(table(rows, ["backup", "type", "action", "reasons"]))
    _print_freed(result)
    return 0


def health(args: argparse.Namespace) -> int:
    """No flow run: a few stat calls, answered at once."""
    settings = _settings(args, database_path=args.db, backup_dir=args.backup_dir)
    backups = backup_store(settings.backup_dir).local_path
    report = check_health(Path(settings.database_path), backups)
    if args.json:
        emit_json(report.to_json())
    else:
        print(f"status   : {report.status}")
        presence = "present" if report.database_present else "missing"
        print(f"database : {settings.database_path} ({presence})")
        for warning in report.warnings:
            print(f"warning  : {warning}")
    return 0 if report.status == "ok" else DEGRADED_EXIT


def schedule(args: argparse.Namespace) -> int:
    settings = _settings(
        args, database_path=args.db, backup_dir=args.backup_dir, interval_hours=args.interval_hours
    )
    if args.run_if_due:
        db.require_file(settings.database_path)
    with progress_bar(not args.json):
        outcome = run_operation(
            "schedule",
            database_path=args.db,
            backup_dir=args.backup_dir,
            interval_hours=args.interval_hours,
            run_if_due=args.run_if_due,
            config_file=args.config,
            settings=settings,
        )
    if args.json:
        emit_json(outcome)
        return 0
    plan = outcome["schedule"]
    if outcome["backup"]:
        print(f"📦 Backup created: {outcome['backup']['backup_path']}")
    print(f"last backup : {_when(plan['last_backup'])}")
    print(f"next backup : {_when(plan['next_backup'])} (every {plan['interval_hours']} h)")
    print(f"due now     : {'yes' if plan['is_due'] else 'no'}")
    return 0


def restore(args: argparse.Namespace) -> int:
    options = parse_options(
        RestoreOptions,
        backup_path=args.backup,
        # Not given: the flow resolves it and can name the env var or file key in a warning.
        create_pre_restore_backup=False if args.no_pre_restore_backup else None,
        allow_schema_change=args.allow_schema_change,
        allow_gate_failed=args.allow_gate_failed,
    )
    settings = _settings(args, database_path=args.db, encryption_key_file=args.key_file)
    _require_backup(args.backup, settings)
    with progress_bar(not args.json):
        result: RestoreResult = run_operation(
            "restore",
            options,
            verify_first=not args.no_verify,
            config_file=args.config,
            settings=settings,
        )
    if args.json:
        emit_json(result.document())
        return 0
    print(f"✅ Database {result.database_path} restored from {args.backup}")
    print(
        f"   {result.backup_info['total_transactions']} transactions, {result.duration_seconds} s"
    )
    if result.pre_restore_backup:
        print(f"   pre-restore backup: {result.pre_restore_backup}")
    for warning in result.warnings:
        print(f"   warning: {warning}")
    return 0


def export(args: argparse.Namespace) -> int:
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    options = parse_options(
        ExportOptions,
        fmt=args.format,
        backup_path=args.from_backup,
        tables=tables,
        quality=not args.no_quality,
    )
    settings = _settings(
        args,
        database_path=args.db,
        export_dir=args.export_dir,
        default_export_format=args.format,
        reports_dir=args.reports_dir,
        encryption_key_file=args.key_file,
    )
    if args.from_backup is not None:
        _require_backup(args.from_backup, settings)
    writing_key(args.encrypt, settings.encryption_key_file)  # fail fast
    if args.from_backup is None:
        db.require_file(settings.database_path)
    result = run_operation(
        "export",
        options,
        out=args.out,
        encrypt=args.encrypt,
        config_file=args.config,
        settings=settings,
    )
    if args.json:
        emit_json(result)
        return 0
    print(
        f"Exported {result['format']} to {result['export_path']} "
        f"({human_bytes(result['total_bytes'])}); manifest: {result['manifest_path']}"
    )
    print(table(sorted(result["row_counts"].items()), ["table", "rows"]))
    _print_gate(result.get("quality"))
    if result.get("encrypted"):
        print("   encrypted: the data files end in .enc; `dagvault decrypt FILE` reads them")
    return 0


def import_sql(args: argparse.Namespace) -> int:
    options = parse_options(
        ImportOptions,
        sql_path=args.file,
        create_pre_import_backup=False if args.no_pre_import_backup else None,
    )
    settings = _settings(args, database_path=args.db)
    if not Path(args.file).is_file():
        raise BackupNotFound(f"SQL dump {args.file} does not exist", "Check the path.")
    with progress_bar(not args.json):
        result = run_operation("import-sql", options, config_file=args.config, settings=settings)
    if args.json:
        emit_json(result)
        return 0
    print(f"✅ Database {result['database_path']} imported from {args.file}")
    print(table(sorted(result["row_counts"].items()), ["table", "rows"]))
    if result["pre_import_backup"]:
        print(f"pre-import backup: {result['pre_import_backup']}")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    return 0


def api(args: argparse.Namespace) -> int:
    from dagvault_api.server import serve

    return serve(args.host, args.port, config_file=args.config, audit_log=args.audit_log)


def replicate(args: argparse.Namespace) -> int:
    options = parse_options(ReplicateOptions, bandwidth_limit=args.bandwidth_limit)
    settings = _settings(
        args,
        backup_dir=args.backup_dir,
        replicas=args.to,
        encryption_enabled=args.encrypt,
        encryption_key_file=args.key_file,
        bandwidth_limit=options.bandwidth_limit,
    )
    reports = run_operation(
        "replicate",
        options,
        targets=args.to,
        backup_dir=args.backup_dir,
        encrypt=args.encrypt,
        config_file=args.config,
        settings=settings,
        encryption_key_file=args.key_file,
    )
    if args.json:
        emit_json(reports)
        return 0
    rows = [
        (
            r["target"],
            len(r["copied"]),
            human_bytes(r["bytes_copied"]),
            r["missing"],
            "-" if r["lag_seconds"] is None else f"{r['lag_seconds']} s",
        )
        for r in reports
    ]
    print(table(rows, ["target", "copied", "bytes", "missing", "lag"]))
    return 0


def keygen(args: argparse.Namespace) -> int:
    generate_key_file(Path(args.path))
    if args.json:
        emit_json({"key_file": args.path})
    else:
        print(f"🔑 New key written to {args.path} (mode 0600)")
        print("   Keep a copy off this node: without the key, encrypted backups are lost.")
    return 0


def decrypt(args: argparse.Namespace) -> int:
    settings = _settings(args, encryption_key_file=args.key_file)
    if Path(args.out).exists():
        raise ConfigError(f"{args.out} already exists", "Choose a new --out path.")
    decrypt_to(Path(args.file), Path(args.out), load_key(settings.encryption_key_file))
    if args.json:
        emit_json({"decrypted": args.file, "out": args.out})
    else:
        print(f"🔓 {args.file} decrypted to {args.out}")
    return 0


def sample_ledger(args: argparse.Namespace) -> int:
    from dagvault.sample import create_sample_ledger

    try:
        stats = create_sample_ledger(
            args.path, args.transactions, seed=args.seed, nodes=args.nodes, append=args.append
        )
    except FileExistsError:
        raise ConfigError(
            f"{args.path} already exists", "Pass --append to add transactions, or pick a new path."
        ) from None
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"Cannot append to {args.path}: {exc}",
            "Append to a ledger written by `dagvault sample-ledger`, or drop --append.",
        ) from None
    if args.json:
        emit_json(stats.__dict__)
    else:
        print(
            f"Sample ledger {stats.path}: {stats.transactions} transactions, {stats.nodes} "
            f"nodes, {human_bytes(stats.file_size)} in {stats.seconds:.1f} s"
        )
    return 0
