"""Settings: command-line flag > environment variable > JSON config file > default.

The environment variables and the config file layout (docs/configuration.md) are the node's
documented ones, plus DATABASE_PATH and a ``ledger`` section naming the tables that
hold transactions and nodes. A bad value is a ConfigError naming the setting and
where the value came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dagvault.errors import ConfigError
from dagvault.json_errors import describe_json_error
from dagvault.ledger import LedgerProfile
from dagvault.presets import PRESETS
from dagvault.retention import DEFAULT_PRE_RESTORE_KEEP
from dagvault.storage.throttle import parse_rate

EXPORT_FORMATS = ("sql", "json", "jsonl", "csv", "parquet")
CONFIG_ENV = "DAGVAULT_CONFIG"


# The ledger profile's names default to LedgerProfile's own (one source of truth).
_LEDGER_DEFAULTS = LedgerProfile()


@dataclass(frozen=True)
class Settings:
    database_path: Path = Path("./blockchain.db")
    # A local directory, or a storage target URL (s3://bucket/prefix, gs://…, file:///dir).
    backup_dir: Path | str = Path("./backups")
    # Extra copies (storage target URLs; plain paths become file:// URLs) kept in step
    # by `dagvault replicate` and after each backup. Default: none.
    replicas: tuple[str, ...] = ()
    # Bytes per second every upload to a storage target (replicate, a backup's replicas, a
    # remote BACKUP_DIR) may use on average, within 10%. Default: None (no limit).
    bandwidth_limit: int | None = None
    # Encrypt what is written to storage targets (and exports) with AES-256-GCM.
    encryption_enabled: bool = False
    # File holding the key (64 hex digits); else DAGVAULT_ENCRYPTION_KEY holds the key.
    encryption_key_file: Path | None = None
    # Where backups fetched from a storage target are staged for verify/export (and
    # remote backups before upload). Default: the system's temp directory; a restore
    # stages beside the database.
    staging_dir: Path | None = None
    # Hours between scheduled backups. Default: 24 (daily, the "production" preset).
    interval_hours: int = 24
    # Backups kept by cleanup when no --keep is given. Default: 30.
    retention_count: int = 30
    compression_enabled: bool = False
    # Run cleanup (keep retention_count) after each scheduled backup. Default: on.
    auto_cleanup: bool = True
    export_dir: Path = Path("./exports")
    default_export_format: str = "sql"
    include_schema: bool = True
    include_data: bool = True
    create_pre_restore_backup: bool = True
    # Pre-restore backups kept per database (beside it); older ones are removed by the
    # next restore, cleanup or prune. Default: 3.
    pre_restore_keep: int = DEFAULT_PRE_RESTORE_KEEP
    restore_verify_checksum: bool = True
    # A restore still running after this many seconds is rolled back. Default: 3600.
    max_restore_time: int = 3600
    transactions_table: str = _LEDGER_DEFAULTS.transactions_table
    nodes_table: str = _LEDGER_DEFAULTS.nodes_table
    # Column that orders exported transactions (Parquet row groups prune by it).
    timestamp_column: str = _LEDGER_DEFAULTS.timestamp_column
    # How long an operation waits for a writer's lock before giving up. Default: 30 s.
    busy_timeout_seconds: float = 30.0
    # The ledger profile the data-quality gates check (tables/columns; see LedgerProfile).
    parents_table: str = _LEDGER_DEFAULTS.parents_table
    parent_child_column: str = _LEDGER_DEFAULTS.parent_child_column
    parent_parent_column: str = _LEDGER_DEFAULTS.parent_parent_column
    id_column: str = _LEDGER_DEFAULTS.id_column
    hash_column: str = _LEDGER_DEFAULTS.hash_column
    amount_column: str = _LEDGER_DEFAULTS.amount_column
    fee_column: str = _LEDGER_DEFAULTS.fee_column
    # Where the quality gates write GX Data Docs (HTML) and validation results.
    reports_dir: Path = Path("./reports")
    # The http(s) URL where reports_dir/data_docs is served to the Prefect UI's users
    # (`dagvault api` serves it at /data-docs/): the gates' link artifacts point there.
    # None links the file on the worker's disk, which only that machine can open.
    reports_url: str | None = None
    # Plausible transaction timestamps (unix seconds): from Bitcoin's genesis block
    # (2009-01-03) to this far past the current time (clock skew between nodes).
    min_timestamp: int = 1_231_006_805
    max_future_seconds: int = 86_400
    # Accept fewer transactions than the baseline (the previous good backup, or a later
    # restore/import) in the gates. For one run of a deployment or a command without the
    # flag; left on, every data loss passes (with a warning). Default: off.
    allow_decrease: bool = False
    # A named schedule (production, development, critical; docs/production.md): defaults
    # for interval_hours and retention_count below any flag, env var or file value.
    preset: str | None = None
    # A Prefect notification block ("<type-slug>/<name>", e.g. slack-webhook/ops) that
    # failed or crashed runs post to; None sends nothing.
    notify_block: str | None = None
    # The health report (`dagvault report`, the weekly deployment): the days it covers,
    # the failure rate of the last 7 days above which it warns, and the days of free disk
    # at the current growth below which it warns. Defaults: 30 days, 5%, 30 days.
    report_days: int = 30
    report_max_failure_rate: float = 0.05
    report_min_disk_days: float = 30.0
    # The largest request body `dagvault api` reads; larger ones are refused (413) before
    # they are buffered. The API's JSON bodies are a few KiB. Default: 256 KiB.
    api_max_body_bytes: int = 256 * 1024
    # The recovery point objective: how old the newest recovery point of a changed ledger
    # may get. /health is degraded above it; the watcher's trigger window and the deferral
    # bound follow it. Default: 60 s.
    rpo_target_seconds: int = 60
    # Resource-aware scheduling (a deployment's backups only): wait while BACKUP_DIR has
    # less free space than this (MiB; 0: never) ...
    min_free_mb: int = 1024
    # ... or while the 1-minute load average per core is above this ...
    max_load_per_cpu: float = 2.0
    # ... but never longer than rpo_target_seconds plus this after the backup was due.
    defer_grace_seconds: int = 120
    # The ledger watcher (`dagvault watch`, part of `dagvault up`): seconds between looks.
    watch_interval_seconds: float = 1.0
    # A backup at once after this many new transactions (0: off) ...
    watch_significant_transactions: int = 10_000
    # ... or a new row in one of these tables (a checkpoint or milestone table).
    watch_significant_tables: tuple[str, ...] = ()


def _positive_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected a positive integer")
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise ValueError("expected a positive integer") from None
    if value < 1 or (isinstance(raw, float) and raw != value):
        raise ValueError("expected a positive integer")
    return value


def _positive_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("expected a positive number")
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1e308
        raise ValueError("expected a positive number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a positive number")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def _fraction(raw: Any) -> float:
    """A rate from 0 to 1, or a percentage ("5%")."""
    text = str(raw).strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("expected a rate from 0 to 1, or a percentage such as 5%") from None
    if isinstance(raw, bool) or not 0 <= value <= 1:
        raise ValueError("expected a rate from 0 to 1, or a percentage such as 5%")
    return value


def _non_negative_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected a whole number >= 0")
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("expected a whole number >= 0") from None
    if value < 0 or (isinstance(raw, float) and raw != value):
        raise ValueError("expected a whole number >= 0")
    return value


def _path(raw: Any) -> Path:
    if not isinstance(raw, str | os.PathLike) or not str(raw).strip():
        raise ValueError("expected a non-empty path")
    try:
        return Path(raw).expanduser()
    except RuntimeError:  # "~name" of a user this system does not know
        raise ValueError(f"cannot expand {str(raw).split('/')[0]!r}: no such user") from None


def _target(raw: Any) -> Path | str:
    """A local directory, or a URL (``scheme://…``) of a storage target."""
    if isinstance(raw, str) and "://" in raw:
        scheme, _, rest = raw.strip().partition("://")
        if not scheme.isidentifier() or not rest.strip("/"):
            raise ValueError("expected a directory or a URL such as s3://bucket/prefix")
        return f"{scheme.lower()}://{rest.rstrip('/')}"
    return _path(raw)


def replica_targets(raw: Any) -> tuple[str, ...]:
    """A list of targets (or one comma-separated string, for the environment)."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ValueError("expected a list of directories or URLs")
    targets = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        target = _target(item.strip() if isinstance(item, str) else item)
        targets.append(target if isinstance(target, str) else target.absolute().as_uri())
    return tuple(targets)


def _export_format(raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in EXPORT_FORMATS:
        raise ValueError(f"expected one of {', '.join(EXPORT_FORMATS)}")
    return text


def _preset(raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in PRESETS:
        raise ValueError(f"expected one of {', '.join(PRESETS)}")
    return text


def _block_name(raw: Any) -> str:
    text = str(raw).strip()
    slug, _, name = text.partition("/")
    if not slug or not name:
        raise ValueError("expected a Prefect block as <block-type-slug>/<block-name>")
    return text


def _http_url(raw: Any) -> str:
    text = str(raw).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL")
    return text.rstrip("/") + "/"


def _identifier(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("expected a table or column name")
    return raw


def _identifiers(raw: Any) -> tuple[str, ...]:
    """Table names: a list (the file) or one comma-separated string (the environment)."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ValueError("expected a list of table names")
    return tuple(_identifier(item.strip() if isinstance(item, str) else item) for item in items)


def _non_negative_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("expected a number >= 0")
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("expected a number >= 0") from None
    if not 0 <= value < float("inf"):
        raise ValueError("expected a number >= 0")
    return value


@dataclass(frozen=True)
class _Spec:
    env: str | None
    file_key: tuple[str, str]
    parse: Callable[[Any], Any]


_SPECS: dict[str, _Spec] = {
    "database_path": _Spec("DATABASE_PATH", ("database", "path"), _path),
    "backup_dir": _Spec("BACKUP_DIR", ("backup", "directory"), _target),
    "replicas": _Spec("BACKUP_REPLICAS", ("backup", "replicas"), replica_targets),
    "bandwidth_limit": _Spec("DAGVAULT_BANDWIDTH_LIMIT", ("backup", "bandwidth_limit"), parse_rate),
    "encryption_enabled": _Spec(
        "BACKUP_ENCRYPTION_ENABLED", ("backup", "encryption_enabled"), _boolean
    ),
    "encryption_key_file": _Spec(
        "DAGVAULT_ENCRYPTION_KEY_FILE", ("backup", "encryption_key_file"), _path
    ),
    "staging_dir": _Spec("DAGVAULT_STAGING_DIR", ("backup", "staging_dir"), _path),
    "interval_hours": _Spec("BACKUP_INTERVAL_HOURS", ("backup", "interval_hours"), _positive_int),
    "retention_count": _Spec(
        "BACKUP_RETENTION_COUNT", ("backup", "retention_count"), _positive_int
    ),
    "compression_enabled": _Spec(
        "BACKUP_COMPRESSION_ENABLED", ("backup", "compression_enabled"), _boolean
    ),
    "auto_cleanup": _Spec("BACKUP_AUTO_CLEANUP", ("backup", "auto_cleanup"), _boolean),
    "export_dir": _Spec("EXPORT_DIR", ("export", "directory"), _path),
    "default_export_format": _Spec(
        "DEFAULT_EXPORT_FORMAT", ("export", "default_format"), _export_format
    ),
    "include_schema": _Spec(None, ("export", "include_schema"), _boolean),
    "include_data": _Spec(None, ("export", "include_data"), _boolean),
    "create_pre_restore_backup": _Spec(
        "CREATE_PRE_RESTORE_BACKUP", ("restore", "create_pre_restore_backup"), _boolean
    ),
    "pre_restore_keep": _Spec(
        "PRE_RESTORE_BACKUP_COUNT", ("restore", "pre_restore_keep"), _positive_int
    ),
    "restore_verify_checksum": _Spec(
        "RESTORE_VERIFY_CHECKSUM", ("restore", "verify_checksum"), _boolean
    ),
    "max_restore_time": _Spec(None, ("restore", "max_restore_time"), _positive_int),
    "transactions_table": _Spec(None, ("ledger", "transactions_table"), _identifier),
    "nodes_table": _Spec(None, ("ledger", "nodes_table"), _identifier),
    "timestamp_column": _Spec(None, ("ledger", "timestamp_column"), _identifier),
    "busy_timeout_seconds": _Spec(
        "DAGVAULT_BUSY_TIMEOUT", ("database", "busy_timeout_seconds"), _positive_float
    ),
    "parents_table": _Spec(None, ("ledger", "parents_table"), _identifier),
    "parent_child_column": _Spec(None, ("ledger", "parent_child_column"), _identifier),
    "parent_parent_column": _Spec(None, ("ledger", "parent_parent_column"), _identifier),
    "id_column": _Spec(None, ("ledger", "id_column"), _identifier),
    "hash_column": _Spec(None, ("ledger", "hash_column"), _identifier),
    "amount_column": _Spec(None, ("ledger", "amount_column"), _identifier),
    "fee_column": _Spec(None, ("ledger", "fee_column"), _identifier),
    "reports_dir": _Spec("DAGVAULT_REPORTS_DIR", ("quality", "reports_dir"), _path),
    "reports_url": _Spec("DAGVAULT_REPORTS_URL", ("quality", "reports_url"), _http_url),
    "min_timestamp": _Spec(None, ("quality", "min_timestamp"), _non_negative_int),
    "max_future_seconds": _Spec(None, ("quality", "max_future_seconds"), _non_negative_int),
    "allow_decrease": _Spec("DAGVAULT_ALLOW_DECREASE", ("quality", "allow_decrease"), _boolean),
    "preset": _Spec("BACKUP_PRESET", ("backup", "preset"), _preset),
    "notify_block": _Spec("DAGVAULT_NOTIFY_BLOCK", ("notify", "block"), _block_name),
    "report_days": _Spec("DAGVAULT_REPORT_DAYS", ("report", "days"), _positive_int),
    "report_max_failure_rate": _Spec(
        "DAGVAULT_REPORT_MAX_FAILURE_RATE", ("report", "max_failure_rate"), _fraction
    ),
    "report_min_disk_days": _Spec(
        "DAGVAULT_REPORT_MIN_DISK_DAYS", ("report", "min_disk_days"), _positive_float
    ),
    "api_max_body_bytes": _Spec(
        "DAGVAULT_API_MAX_BODY_BYTES", ("api", "max_body_bytes"), _positive_int
    ),
    "rpo_target_seconds": _Spec(
        "RPO_TARGET_SECONDS", ("backup", "rpo_target_seconds"), _positive_int
    ),
    "min_free_mb": _Spec("BACKUP_MIN_FREE_MB", ("backup", "min_free_mb"), _non_negative_int),
    "max_load_per_cpu": _Spec(
        "BACKUP_MAX_LOAD_PER_CPU", ("backup", "max_load_per_cpu"), _non_negative_float
    ),
    "defer_grace_seconds": _Spec(
        "BACKUP_DEFER_GRACE_SECONDS", ("backup", "defer_grace_seconds"), _non_negative_int
    ),
    "watch_interval_seconds": _Spec(
        "DAGVAULT_WATCH_INTERVAL", ("watch", "interval_seconds"), _positive_float
    ),
    "watch_significant_transactions": _Spec(
        "DAGVAULT_WATCH_TRANSACTIONS", ("watch", "significant_transactions"), _non_negative_int
    ),
    "watch_significant_tables": _Spec(
        "DAGVAULT_WATCH_TABLES", ("watch", "significant_tables"), _identifiers
    ),
}

_FILE_KEYS = {spec.file_key for spec in _SPECS.values()}


def env_var(setting: str) -> str | None:
    """The environment variable that sets ``setting``, if any (for help texts)."""
    return _SPECS[setting].env


_LAYOUT_HINT = "Fix the file; docs/configuration.md shows its layout."


def _read_config_file(path: Path) -> dict[tuple[str, str], Any]:
    try:
        # utf-8-sig: a byte-order mark, as some Windows editors write, is no mistake.
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(
            f"Config file {path} does not exist",
            f"Create it, or unset {CONFIG_ENV} / drop --config to use the defaults.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Config file {path} cannot be read: {exc}",
            "Pass a readable UTF-8 JSON file with --config / DAGVAULT_CONFIG.",
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"Config file {path} is not valid JSON: {describe_json_error(exc)}",
            f"Fix line {exc.lineno} of {path}: JSON takes double-quoted keys and strings, "
            "no trailing commas and no comments. docs/configuration.md shows the layout.",
        ) from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ConfigError(
            f"Config file {path} holds an unreadable number: {exc}", _LAYOUT_HINT
        ) from None
    if not isinstance(document, dict):
        raise ConfigError(f"Config file {path} must hold a JSON object", _LAYOUT_HINT)
    values: dict[tuple[str, str], Any] = {}
    for section, body in document.items():
        if not isinstance(body, dict):
            raise ConfigError(
                f"Config file {path}: section {section!r} must be an object", _LAYOUT_HINT
            )
        for key, value in body.items():
            if (section, key) not in _FILE_KEYS:
                raise ConfigError(
                    f"Config file {path}: unknown setting {section}.{key}",
                    "Check the spelling against the settings table in docs/configuration.md.",
                )
            values[(section, key)] = value
    return values


def _given(
    name: str,
    overrides: Mapping[str, Any],
    environ: Mapping[str, str],
    file_values: dict[tuple[str, str], Any],
    file_name: str | os.PathLike[str] | None,
) -> tuple[Any, str] | None:
    """The raw value of setting ``name`` and where it came from, by precedence; None when
    nothing sets it (the default applies)."""
    spec = _SPECS[name]
    if name in overrides:
        return overrides[name], _flag(name)
    if spec.env and spec.env in environ:
        return environ[spec.env], f"environment variable {spec.env}"
    if spec.file_key in file_values:
        return file_values[spec.file_key], f"{'.'.join(spec.file_key)} in {file_name}"
    return None


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def setting_source(
    name: str,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Where the environment or the config file set ``name`` ("environment variable X",
    "section.key in FILE"), or "the default": for messages that explain a behaviour."""
    environ = os.environ if environ is None else environ
    file_name = config_file if config_file is not None else environ.get(CONFIG_ENV)
    file_values = _read_config_file(Path(file_name)) if file_name else {}
    given = _given(name, {}, environ, file_values, file_name)
    return given[1] if given else "the default"


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    base: Settings | None = None,
) -> Settings:
    """Resolve every setting: default < config file < environment < ``overrides`` (the
    command-line flags or the request's fields; None = not given). The one place settings
    are built: each entry point (a command, the API server, a deployment's run) calls it
    once and hands the result down.

    ``base``: settings an entry point resolved already (the API server's, at start); the
    ``overrides`` (one request's) go on top of them, and neither the file nor the
    environment is read again, so what a request was checked against is what its run uses.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(overrides) - set(_SPECS)
    if unknown:
        raise ConfigError(f"Unknown setting(s): {', '.join(sorted(unknown))}")
    if base is not None:
        return replace(
            base, **{name: _parse(name, raw, _flag(name)) for name, raw in overrides.items()}
        )
    environ = os.environ if environ is None else environ
    file_name = config_file if config_file is not None else environ.get(CONFIG_ENV)
    file_values = _read_config_file(Path(file_name)) if file_name else {}

    resolved: dict[str, Any] = {}
    for field in fields(Settings):
        given = _given(field.name, overrides, environ, file_values, file_name)
        if given is not None:
            resolved[field.name] = _parse(field.name, *given)
    preset = PRESETS.get(resolved.get("preset", ""))
    if preset:
        for name in ("interval_hours", "retention_count"):
            resolved.setdefault(name, getattr(preset, name))
    return Settings(**resolved)


def _parse(name: str, raw: Any, source: str) -> Any:
    try:
        return _SPECS[name].parse(raw)
    except ValueError as exc:
        raise ConfigError(
            f"Invalid value {raw!r} for {source}: {exc}",
            f"Set {source} to a valid value.",
        ) from None


# Environment variables a run reads beyond the settings: the encryption key and the
# storage targets' credentials (fsspec's S3, GCS and Azure back ends).
_SECRET_ENV_PREFIXES = ("DAGVAULT_ENCRYPTION_KEY", "AWS_", "GOOGLE_", "AZURE_")


def settings_document(
    settings: Settings, base: Path, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What a run in a process with these settings, working directory ``base`` and
    environment would act on, comparable between two processes (the CLI and the node
    service it hands operations to): paths made absolute, secrets as a SHA-256 only."""
    environ = os.environ if environ is None else environ
    document: dict[str, Any] = {}
    for field in fields(Settings):
        value = getattr(settings, field.name)
        if isinstance(value, Path):
            value = os.path.normpath(base / value)
        elif isinstance(value, tuple):
            value = list(value)
        document[field.name] = value
    secrets = sorted((k, v) for k, v in environ.items() if k.startswith(_SECRET_ENV_PREFIXES))
    document["secrets_sha256"] = hashlib.sha256(json.dumps(secrets).encode()).hexdigest()
    return document
