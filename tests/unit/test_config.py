"""Settings (dagvault.config.load_settings): flag > environment > JSON file > default.

Every call passes ``environ`` explicitly: the process environment is never read or changed.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from dagvault.config import Settings, env_var, load_settings
from dagvault.errors import ConfigError

# The layout of the system description (docs/configuration.md), with its default values.
DESCRIPTION_FILE: dict[str, dict[str, Any]] = {
    "database": {"path": "./blockchain.db"},
    "backup": {
        "directory": "./backups",
        "interval_hours": 24,
        "retention_count": 30,
        "compression_enabled": False,
        "auto_cleanup": True,
    },
    "export": {
        "directory": "./exports",
        "default_format": "sql",
        "include_schema": True,
        "include_data": True,
    },
    "restore": {
        "create_pre_restore_backup": True,
        "verify_checksum": True,
        "max_restore_time": 3600,
    },
    "ledger": {"transactions_table": "transactions", "nodes_table": "nodes"},
}


def write_config(tmp_path: Path, document: object, name: str = "dagvault.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.database_path == Path("./blockchain.db")
    assert settings.backup_dir == Path("./backups")
    assert settings.interval_hours == 24
    assert settings.retention_count == 30
    assert settings.compression_enabled is False
    assert settings.auto_cleanup is True
    assert settings.export_dir == Path("./exports")
    assert settings.default_export_format == "sql"
    assert settings.include_schema is True and settings.include_data is True
    assert settings.create_pre_restore_backup is True
    assert settings.restore_verify_checksum is True
    assert settings.max_restore_time == 3600
    assert (settings.transactions_table, settings.nodes_table) == ("transactions", "nodes")
    assert settings.busy_timeout_seconds == 30.0


def test_unrelated_environment_is_ignored() -> None:
    assert load_settings(environ={"HOME": "/root", "BACKUP": "x", "backup_dir": "/y"}) == Settings()


ENV_CASES = [
    ("DATABASE_PATH", "/data/node/ledger.db", "database_path", Path("/data/node/ledger.db")),
    ("BACKUP_DIR", "/srv/backups", "backup_dir", Path("/srv/backups")),
    ("BACKUP_INTERVAL_HOURS", "6", "interval_hours", 6),
    ("BACKUP_RETENTION_COUNT", "7", "retention_count", 7),
    ("BACKUP_COMPRESSION_ENABLED", "true", "compression_enabled", True),
    ("BACKUP_AUTO_CLEANUP", "off", "auto_cleanup", False),
    ("EXPORT_DIR", "/srv/exports", "export_dir", Path("/srv/exports")),
    ("DEFAULT_EXPORT_FORMAT", "parquet", "default_export_format", "parquet"),
    ("CREATE_PRE_RESTORE_BACKUP", "false", "create_pre_restore_backup", False),
    ("RESTORE_VERIFY_CHECKSUM", "0", "restore_verify_checksum", False),
    ("DAGVAULT_BUSY_TIMEOUT", "2.5", "busy_timeout_seconds", 2.5),
]


@pytest.mark.parametrize(
    ("env", "raw", "field", "expected"), ENV_CASES, ids=[c[0] for c in ENV_CASES]
)
def test_each_environment_variable_is_read(
    env: str, raw: str, field: str, expected: object
) -> None:
    settings = load_settings(environ={env: raw})
    assert getattr(settings, field) == expected
    assert settings == replace(Settings(), **{field: expected})  # and nothing else changed
    assert env_var(field) == env


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" On ", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("OFF", False),
    ],
)
def test_boolean_spellings(raw: str, expected: bool) -> None:
    assert load_settings(environ={"RESTORE_VERIFY_CHECKSUM": raw}).restore_verify_checksum is (
        expected
    )


def test_description_file_layout_is_read(tmp_path: Path) -> None:
    assert load_settings(config_file=write_config(tmp_path, DESCRIPTION_FILE), environ={}) == (
        Settings()
    )
    custom = {
        "database": {"path": "/data/ledger.db", "busy_timeout_seconds": 5},
        "backup": {
            "directory": "/srv/b",
            "interval_hours": 12,
            "retention_count": 3,
            "compression_enabled": False,
            "auto_cleanup": False,
        },
        "export": {
            "directory": "/srv/e",
            "default_format": "CSV",
            "include_schema": False,
            "include_data": False,
        },
        "restore": {
            "create_pre_restore_backup": False,
            "verify_checksum": False,
            "max_restore_time": 60,
        },
        "ledger": {"transactions_table": "txs", "nodes_table": "peers"},
    }
    settings = load_settings(config_file=write_config(tmp_path, custom, "custom.json"), environ={})
    assert settings == Settings(
        database_path=Path("/data/ledger.db"),
        backup_dir=Path("/srv/b"),
        interval_hours=12,
        retention_count=3,
        compression_enabled=False,
        auto_cleanup=False,
        export_dir=Path("/srv/e"),
        default_export_format="csv",
        include_schema=False,
        include_data=False,
        create_pre_restore_backup=False,
        restore_verify_checksum=False,
        max_restore_time=60,
        transactions_table="txs",
        nodes_table="peers",
        busy_timeout_seconds=5.0,
    )


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"backup": {"retention_count": 9}})
    assert load_settings(config_file=path, environ={}) == replace(Settings(), retention_count=9)


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"backup": {"interval_hours": 2}})
    settings = load_settings(environ={"DAGVAULT_CONFIG": str(path)})
    assert settings.interval_hours == 2
    # An explicit --config wins over DAGVAULT_CONFIG.
    other = write_config(tmp_path, {"backup": {"interval_hours": 3}}, "other.json")
    assert (
        load_settings(config_file=other, environ={"DAGVAULT_CONFIG": str(path)}).interval_hours == 3
    )


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "backup": {"interval_hours": 12, "directory": "/file/b"},
            "database": {"path": "/file.db"},
        },
    )
    env = {"BACKUP_INTERVAL_HOURS": "6", "BACKUP_DIR": "/env/b"}
    flags = {"interval_hours": 3, "backup_dir": None, "retention_count": None}

    settings = load_settings(flags, config_file=path, environ=env)
    assert settings.interval_hours == 3  # flag
    assert settings.backup_dir == Path("/env/b")  # flag not given (None): env
    assert settings.database_path == Path("/file.db")  # only in the file
    assert settings.retention_count == 30  # nowhere: default

    assert load_settings(config_file=path, environ=env).interval_hours == 6
    assert load_settings(config_file=path, environ={}).interval_hours == 12
    assert load_settings(environ={}).interval_hours == 24
    assert load_settings({"interval_hours": 3}, environ={}).interval_hours == 3


def test_every_setting_accepts_a_flag() -> None:
    values = {f.name: getattr(Settings(), f.name) for f in fields(Settings)}
    assert load_settings(values, environ={}) == Settings()


# --------------------------------------------------------------------------- bad values


def _config_error(*args: Any, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(*args, **kwargs)
    assert caught.value.exit_code == 2
    return caught.value


@pytest.mark.parametrize(
    ("env", "raw"),
    [
        ("BACKUP_INTERVAL_HOURS", "1.5"),
        ("BACKUP_INTERVAL_HOURS", "0"),
        ("BACKUP_INTERVAL_HOURS", "-3"),
        ("BACKUP_INTERVAL_HOURS", "daily"),
        ("BACKUP_INTERVAL_HOURS", ""),
        ("BACKUP_RETENTION_COUNT", "0"),
        ("BACKUP_RETENTION_COUNT", "ten"),
        ("BACKUP_COMPRESSION_ENABLED", "maybe"),
        ("CREATE_PRE_RESTORE_BACKUP", "maybe"),
        ("RESTORE_VERIFY_CHECKSUM", "2"),
        ("DEFAULT_EXPORT_FORMAT", "xml"),
        ("BACKUP_DIR", ""),
        ("DATABASE_PATH", "   "),
        ("DAGVAULT_BUSY_TIMEOUT", "0"),
        ("DAGVAULT_BUSY_TIMEOUT", "inf"),
        ("DAGVAULT_BUSY_TIMEOUT", "nan"),
    ],
)
def test_bad_environment_value_names_the_variable(env: str, raw: str) -> None:
    err = _config_error(environ={env: raw})
    assert f"environment variable {env}" in err.message
    assert repr(raw) in err.message
    assert err.hint


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("backup", "interval_hours", 0),
        ("backup", "interval_hours", 1.5),
        ("backup", "interval_hours", "many"),
        ("backup", "interval_hours", True),
        ("backup", "retention_count", -1),
        ("backup", "compression_enabled", "maybe"),
        ("export", "default_format", "xml"),
        ("restore", "verify_checksum", None),
        ("restore", "max_restore_time", 0),
        ("database", "path", 42),
        ("ledger", "nodes_table", ""),
    ],
)
def test_bad_file_value_names_the_key_and_file(
    tmp_path: Path, section: str, key: str, value: object
) -> None:
    path = write_config(tmp_path, {section: {key: value}})
    err = _config_error(config_file=path, environ={})
    assert f"{section}.{key} in {path}" in err.message


def test_bad_flag_value_names_the_flag() -> None:
    err = _config_error({"interval_hours": 0}, environ={})
    assert "--interval-hours" in err.message
    err = _config_error({"default_export_format": "xml"}, environ={})
    assert "--default-export-format" in err.message


def test_unknown_flag() -> None:
    assert "intervall_hours" in _config_error({"intervall_hours": 2}, environ={}).message


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"backup": {"intervall_hours": 2}}, "unknown setting backup.intervall_hours"),
        ({"backups": {"directory": "/b"}}, "unknown setting backups.directory"),
        ({"backup": "daily"}, "section 'backup' must be an object"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_bad_file_structure(tmp_path: Path, document: object, fragment: str) -> None:
    path = write_config(tmp_path, document)
    err = _config_error(config_file=path, environ={})
    assert fragment in err.message
    assert str(path) in err.message


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "backup": {"interval_hours": 24,}\n}\n')
    err = _config_error(config_file=path, environ={})
    assert str(path) in err.message
    assert "not valid JSON" in err.message and "line 2" in err.message


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    for kwargs in (
        {"config_file": missing, "environ": {}},
        {"environ": {"DAGVAULT_CONFIG": str(missing)}},
    ):
        err = _config_error(**kwargs)
        assert str(missing) in err.message and "does not exist" in err.message
        assert err.hint


def test_bad_value_in_a_lower_layer_is_still_reported(tmp_path: Path) -> None:
    # A broken file is an error even when a flag overrides the broken value: no silent typos.
    path = write_config(tmp_path, {"backup": {"intervall_hours": 2}})
    with pytest.raises(ConfigError):
        load_settings({"interval_hours": 5}, config_file=path, environ={})


@pytest.mark.parametrize(
    "text",
    [
        '{"backup": {"interval_hours": Infinity}}',  # int(inf) raises OverflowError
        '{"database": {"busy_timeout_seconds": 1' + "0" * 400 + "}}",  # float() overflows
        '{"quality": {"min_timestamp": -Infinity}}',
        '{"backup": {"retention_count": ' + "9" * 5000 + "}}",  # past Python's digit limit
    ],
    ids=["inf-count", "huge-float", "inf-timestamp", "5000-digits"],
)
def test_numbers_python_cannot_convert_are_config_errors(tmp_path: Path, text: str) -> None:
    config = tmp_path / "dagvault.json"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=config, environ={})
    assert caught.value.hint


def test_a_path_naming_an_unknown_user_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no such user"):
        load_settings(environ={"BACKUP_DIR": "~no-such-user-dagvault/backups"})
