"""docs/configuration.md's settings table, written from the code that reads the settings.

Each row joins what three places declare about one setting: the settings table of
``dagvault.config`` (env var, config file key, default), the CLI's parser (the flag whose
``dest`` is the setting's name, or an alias below) and the HTTP API's request models (the
body field of the same name, or an alias below). The prose above ``MARKER`` is hand-written
and kept as it is; ``make docs`` (``python -m dagvault_cli.settings_reference``) rewrites
what follows it, and tests/test_docs.py fails when the committed page differs.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dagvault import config, operations
from dagvault_api import models
from dagvault_cli.main import build_parser
from dagvault_cli.reference import _subcommands

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
MARKER = (
    "<!-- Generated below by `make docs` (python -m dagvault_cli.settings_reference) from "
    "dagvault/config.py, the CLI's parser and dagvault_api/models.py; do not edit below. -->"
)

# Flags and request fields whose name is not the setting's. "command:dest" limits a dest to
# one command (`--no-verify` of `restore` skips the checksum; of `backup`, the check after).
FLAG_ALIASES: dict[str, tuple[str, ...]] = {
    "database_path": ("db",),
    "replicas": ("to", "replicate_to"),
    "encryption_enabled": ("encrypt",),
    "encryption_key_file": ("key_file",),
    "retention_count": ("keep",),
    "compression_enabled": ("compress",),
    "default_export_format": ("format",),
    "create_pre_restore_backup": ("no_pre_restore_backup", "no_pre_import_backup"),
    "restore_verify_checksum": ("restore:no_verify",),
    "report_days": ("days",),
}
API_ALIASES: dict[str, tuple[str, ...]] = {
    "compression_enabled": ("compress",),
    "default_export_format": ("format",),
    "retention_count": ("keep",),
    "create_pre_restore_backup": ("create_pre_import_backup",),
}

# One line per setting: what it does, with what the other columns cannot say. A setting
# added to dagvault/config.py without a line here makes `make docs` fail.
MEANINGS: dict[str, str] = {
    "database_path": "the ledger database",
    "busy_timeout_seconds": "seconds an operation waits for a writer's lock before giving up",
    "backup_dir": "the backup directory, or a storage target URL (`s3://bucket/prefix`, "
    "`gs://…`, `file:///dir`; [off-site copies](offsite.md))",
    "replicas": "extra copies kept in step by `dagvault replicate` and after each backup "
    "(URLs or paths; comma-separated in the environment, a list in the file)",
    "encryption_enabled": "encrypt what is written to storage targets and exports, "
    "AES-256-GCM ([encryption](offsite.md))",
    "encryption_key_file": "file holding the encryption key (64 hex digits); else the key "
    "itself in `DAGVAULT_ENCRYPTION_KEY`",
    "staging_dir": "where backups fetched from (or uploaded to) a storage target are staged; "
    "default: the system temp directory (a restore stages beside the database)",
    "interval_hours": "hours between scheduled backups (a preset's if unset)",
    "retention_count": "backups `cleanup` keeps without `--keep`; periods the scheduled "
    "retention keeps (a preset's if unset)",
    "compression_enabled": "zstd-compress backup files (full and delta)",
    "auto_cleanup": "run `cleanup` (keep `retention_count`) after each scheduled backup",
    "preset": "a named schedule (`production`, `development`, `critical`) supplying "
    "`interval_hours` and `retention_count` ([presets](production.md#schedules-and-presets))",
    "export_dir": "where unnamed exports go, and the only place the HTTP API writes exports",
    "default_export_format": "export format when none is given: `sql`, `json`, `jsonl`, "
    "`csv` or `parquet`",
    "include_schema": "SQL exports include the schema",
    "include_data": "SQL exports include the rows",
    "create_pre_restore_backup": "take a verified backup of the database before a restore or "
    "an `import-sql` replaces it",
    "pre_restore_keep": "pre-restore backups kept per database (beside it; at least 1)",
    "restore_verify_checksum": "verify a backup (checksums, chain) before restoring it",
    "max_restore_time": "seconds after which a running restore is rolled back",
    "transactions_table": "the ledger's transactions table ([quality gates](quality-gates.md))",
    "nodes_table": "the ledger's nodes table",
    "timestamp_column": "the transactions column that orders exports and the gates' "
    "timestamp check",
    "parents_table": "the DAG's edge table",
    "parent_child_column": "the edge table's child column",
    "parent_parent_column": "the edge table's parent column",
    "id_column": "the transactions column the edges refer to",
    "hash_column": "the transactions' unique hash column",
    "amount_column": "the transactions' amount column (never negative)",
    "fee_column": "the transactions' fee column (never negative)",
    "reports_dir": "where the quality gates write GX Data Docs (HTML) and validation results",
    "reports_url": "the http(s) URL where `<reports_dir>/data_docs` is served (`dagvault api` "
    "serves it at `/data-docs/`): the Prefect UI's Data Docs links point there "
    "([prefect-ui.md](prefect-ui.md#data-docs))",
    "min_timestamp": "earliest plausible transaction timestamp, unix seconds (default: "
    "Bitcoin's genesis block, 2009-01-03)",
    "max_future_seconds": "how far past the current time a timestamp may lie (clock skew)",
    "allow_decrease": "accept fewer transactions than the baseline in the gates (meant for one "
    "run; left on, every data loss passes with a warning)",
    "notify_block": "a Prefect notification block (`<type-slug>/<name>`, e.g. "
    "`slack-webhook/ops`) that failed or crashed runs post to",
    "bandwidth_limit": "bytes per second every upload to a storage target may use on "
    "average (`10M`, `512K`: MiB, KiB; within 10%; [bandwidth limits](offsite.md"
    "#bandwidth-limits)); default: no limit",
    "report_days": "the days the [health report](production.md#health-report) covers",
    "report_max_failure_rate": "the health report warns when the failure rate of the last "
    "7 days is above this (`0.05` or `5%`)",
    "report_min_disk_days": "the health report warns when the backup filesystem fills in "
    "fewer days than this at the current growth",
    "api_max_body_bytes": "largest request body `dagvault api` reads (256 KiB by default); "
    "larger ones are refused with 413",
    "rpo_target_seconds": "the recovery point objective: `/health` and `dagvault health` are "
    "degraded while the ledger has changed since a recovery point older than this (seconds); "
    "the watcher's trigger window is half of it ([continuous protection](continuous.md))",
    "min_free_mb": "a deployment's backup waits while `BACKUP_DIR`'s file system has less "
    "free space (MiB; 0: never)",
    "max_load_per_cpu": "a deployment's backup waits while the 1-minute load average per "
    "core is above this (0: never)",
    "defer_grace_seconds": "a waiting backup runs anyway this long after "
    "`rpo_target_seconds` past its due time",
    "watch_interval_seconds": "seconds between the watcher's looks at the ledger",
    "watch_significant_transactions": "new transactions that make a significant change: a "
    "backup at once (0: off)",
    "watch_significant_tables": "tables whose every new row is a significant change (a "
    "checkpoint table; comma-separated in the environment, a list in the file)",
}


def _flags(parser: argparse.ArgumentParser) -> dict[str, dict[str, list[str]]]:
    """``dest`` (and ``command:dest``) -> flag spelling -> the commands that take it."""
    found: dict[str, dict[str, list[str]]] = {}
    for command, sub in _subcommands(parser).items():
        for action in sub._actions:
            if not action.option_strings:
                continue
            flag = max(action.option_strings, key=len)
            for key in (action.dest, f"{command}:{action.dest}"):
                found.setdefault(key, {}).setdefault(flag, []).append(command)
    return found


def _request_fields() -> dict[str, list[str]]:
    """Field name -> the request models (the HTTP API's bodies) that have it."""
    found: dict[str, list[str]] = {}
    # The bodies are the operations' options models, some extended in the API's models.
    namespaces = [vars(models)] + [
        vars(importlib.import_module(f"{operations.__name__}.{module.name}"))
        for module in pkgutil.iter_modules(operations.__path__)
    ]
    classes = {name: model for namespace in namespaces for name, model in namespace.items()}
    for name, model in sorted(classes.items()):
        if (
            isinstance(model, type)
            and issubclass(model, BaseModel)
            and name.endswith(("Request", "Options"))
            and name != "Options"  # the operations' common base
        ):
            for field, info in model.model_fields.items():
                # A field's HTTP name is its alias where it has one (`format` for `fmt`).
                found.setdefault(info.alias or field, []).append(name)
    return found


def _names(
    setting: str, aliases: dict[str, tuple[str, ...]], known: Mapping[str, object], missing: str
) -> list[str]:
    """The setting's own name and its aliases; an alias the code no longer has is an error
    (a renamed flag or field must not drop out of the page silently)."""
    for alias in aliases.get(setting, ()):
        if alias not in known:
            raise KeyError(f"{setting}: {missing} {alias!r}; update the aliases in {__name__}")
    return [setting, *aliases.get(setting, ())]


def _default(value: Any) -> str:
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value if value.is_absolute() else './' + value.as_posix()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def _join(cells: Iterable[str]) -> str:
    return "<br>".join(cells) or "—"


def rows() -> list[list[str]]:
    """One row per setting: setting, meaning, config key, env var, flag, API field, default."""
    flags = _flags(build_parser())
    fields = _request_fields()
    defaults = config.Settings()
    specs = config._SPECS
    missing = set(specs) - set(MEANINGS)
    if missing:
        raise KeyError(f"no MEANINGS line for setting(s) {', '.join(sorted(missing))}")
    sections = list(dict.fromkeys(spec.file_key[0] for spec in specs.values()))
    table = []
    for name, spec in sorted(specs.items(), key=lambda item: sections.index(item[1].file_key[0])):
        flag_cells = [
            f"`{flag}` ({', '.join(commands)})"
            for dest in _names(name, FLAG_ALIASES, flags, "the parser has no flag with dest")
            for flag, commands in flags.get(dest, {}).items()
        ]
        api_cells = [
            f"`{field}` ({', '.join(fields[field])})"
            for field in _names(name, API_ALIASES, fields, "no request model has a field")
            if field in fields
        ]
        table.append(
            [
                f"`{name}`",
                MEANINGS[name],
                f"`{'.'.join(spec.file_key)}`",
                f"`{spec.env}`" if spec.env else "—",
                _join(flag_cells),
                _join(api_cells),
                _default(getattr(defaults, name)),
            ]
        )
    return table


def render(page: str) -> str:
    """``page`` with everything after MARKER replaced by the generated table."""
    prose, found, _ = page.partition(MARKER)
    if not found:
        raise ValueError(f"{PAGE.name} lacks the marker line {MARKER!r}")
    header = "| setting | meaning | config file key | env var | CLI flag | API field | default |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows()]
    return f"{prose.rstrip()}\n\n{MARKER}\n\n" + "\n".join(lines) + "\n"


def main() -> int:
    PAGE.write_text(render(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {PAGE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
