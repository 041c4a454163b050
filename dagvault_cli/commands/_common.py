"""What the command handlers share: settings and options from the parsed flags, the cheap
checks made before a flow run starts, and the lines several commands print."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from dagvault.config import Settings, load_settings
from dagvault.storage.backup_store import stored_backup
from dagvault_cli.output import emit_json

if TYPE_CHECKING:  # pydantic and the operation models cost `dagvault list` a fifth of a second
    from pydantic import BaseModel

    from dagvault.operations.common import OptionsT


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The settings of this command: its flags (``overrides``; None = not given) over the
    environment, the config file (--config) and the defaults."""
    return load_settings(overrides, config_file=args.config)


def options_from(model: type[OptionsT], args: argparse.Namespace, **values: Any) -> OptionsT:
    """``model`` from the flags named as its fields, and ``values`` for the fields whose
    flag says it otherwise (``--no-verify``, a positional argument); a value the model
    refuses is a ConfigError naming it."""
    from dagvault.operations.common import parse_options

    named = {
        field: getattr(args, field)
        for field in model.model_fields
        if field not in values and hasattr(args, field)
    }
    return parse_options(model, **named, **values)


def require_backup(backup: str, settings: Settings) -> None:
    """Fail fast, before a flow run starts: a local backup that does not exist, or an
    encrypted object (``….enc``, at a target or in a local directory) and no key (other
    URLs are checked there)."""
    stored_backup(backup).precheck(settings.encryption_key_file)


def when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "never"


def json_printed(args: argparse.Namespace, result: BaseModel) -> bool:
    """With --json, print the result's document (the one the HTTP API answers as
    ``data.result``) and say so: the command has nothing more to print."""
    if args.json:
        emit_json(result.model_dump(mode="json"))
    return bool(args.json)


def print_gate(gate: dict[str, Any] | None) -> None:
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
