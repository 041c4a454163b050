"""Each operation's options and result are one model for every front end: the CLI's
flags, the HTTP API's body, the flow's parameters; `--json` prints what the API answers."""

from __future__ import annotations

import inspect
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _api import api_server
from _helpers import make_odd_ledger, write_odd_ledger_config

from dagvault.operations import BackupOptions, BackupResult, RestoreResult
from dagvault.operations.export import ExportOptions
from dagvault.operations.registry import OPERATIONS
from dagvault_api.models import BackupData, BackupRequest, ExportRequest, RestoreData
from flows.launcher import FLOWS

CliRunner = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture of conftest


@pytest.mark.parametrize(
    ("options", "flow"), [(OPERATIONS[name].options, flow) for name, flow in FLOWS.items()]
)
def test_every_option_is_a_parameter_of_its_flow(options: type[Any], flow: str) -> None:
    import importlib

    module, _, name = flow.partition(":")
    parameters = inspect.signature(getattr(importlib.import_module(module), name).fn).parameters
    assert set(options.model_fields) <= set(parameters)
    for field, info in options.model_fields.items():
        if info.is_required():
            continue
        default = parameters[field].default
        # The flow's default is the model's (a deployment leaving it out gets the same).
        assert default == info.default or str(default).lower() == str(info.default).lower()


def test_the_api_takes_the_options_models_as_its_bodies() -> None:
    assert issubclass(BackupRequest, BackupOptions)
    assert set(BackupRequest.model_fields) == set(BackupOptions.model_fields) | {"backup_path"}
    assert BackupData.model_fields["result"].annotation is BackupResult
    assert RestoreData.model_fields["result"].annotation is RestoreResult
    from dagvault_api.routes import backups, exports

    source = inspect.getsource(backups) + inspect.getsource(exports)
    assert "body: RestoreOptions" in source and "body: CleanupOptions" in source
    assert "body: VerifyOptions" in source and "body: ImportOptions" in source
    assert set(ExportRequest.model_fields) == set(ExportOptions.model_fields) | {"export_path"}


def test_a_refused_option_is_a_clear_error_not_a_traceback(cli: CliRunner, tmp_path: Path) -> None:
    make_odd_ledger(tmp_path / "node-ledger.db")
    proc = cli("backup", "--db", "node-ledger.db", "--description", "x" * 1001)
    assert proc.returncode == 2, proc.stderr
    assert "Error: Invalid description" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "backups").exists()


def test_the_registry_names_every_operation_the_launcher_runs() -> None:
    assert set(OPERATIONS) == set(FLOWS)


def _same_document(operation: str, printed: Any, answered: Any) -> None:
    """`--json` and the API's ``data.result`` are one document: the operation's result
    model, field for field, each an exact JSON dump that rebuilds the same typed result."""
    model = OPERATIONS[operation].result
    for document in (printed, answered):
        assert model.model_validate(document).model_dump(mode="json") == document
    assert set(printed) == set(answered), operation
    for key in printed.keys() & answered.keys():
        if printed[key] is not None and answered[key] is not None:
            assert type(printed[key]) is type(answered[key]), (operation, key)


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr
    return json.loads(proc.stdout)


def test_json_and_the_api_answer_are_the_same_document(
    prefect_api_url: str, cli: CliRunner, tmp_path: Path
) -> None:
    make_odd_ledger(tmp_path / "node-ledger.db")
    config = str(write_odd_ledger_config(tmp_path))

    def run(*args: str) -> Any:
        return _json(cli(*args, "--config", config, "--json"))

    printed = run("backup", "--db", "node-ledger.db", "--description", "cli")
    env = {"DAGVAULT_CONFIG": config, "DATABASE_PATH": "./node-ledger.db"}
    with api_server(tmp_path, prefect_api_url, extra_env=env) as server, server.client() as http:

        def answer(path: str, body: dict[str, Any]) -> Any:
            response = http.post(path, json=body)
            assert response.status_code == 200, response.text
            return response.json()["data"]["result"]

        answered = answer("/backup", {"description": "api", "backup_type": "full"})
        _same_document("backup", printed, answered)
        assert set(printed["metadata"]) == set(answered["metadata"])
        assert (printed["metadata"]["description"], answered["metadata"]["description"]) == (
            "cli",
            "api",
        )
        assert printed["backup_type"] == answered["backup_type"] == "Full"

        backup = printed["backup_path"]
        verified = run("verify", backup)
        _same_document("verify", verified, answer("/backup/verify", {"backup_path": backup}))
        assert verified["valid"] is True and verified["reports"][0]["valid"] is True

        # The gates' documents are compared with the backups': the export's are left out.
        exported = run("export", "--db", "node-ledger.db", "--format", "sql", "--no-quality")
        api_export = answer("/backup/export", {"format": "sql", "quality": False})
        _same_document("export", exported, api_export)
        assert exported["quality"] is None and exported["encrypted"] is False

        imported = run("import-sql", exported["export_path"], "--db", "node-ledger.db")
        api_import = answer("/backup/import", {"sql_path": api_export["export_path"]})
        _same_document("import-sql", imported, api_import)

        restored = run("restore", backup, "--db", "node-ledger.db")
        _same_document("restore", restored, answer("/backup/restore", {"backup_path": backup}))

        planned = run("cleanup", "--keep", "100", "--dry-run")
        api_plan = answer("/backup/cleanup", {"keep": 100, "dry_run": True})
        _same_document("cleanup", planned, api_plan)
        assert planned["removed_backups"] == api_plan["removed_backups"] == 0
