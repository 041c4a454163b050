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

from dagvault.operations import BackupOptions, BackupResult, RestoreOptions, RestoreResult
from dagvault.operations.export import ExportOptions
from dagvault.operations.replicate import ReplicateOptions
from dagvault.operations.report import ReportOptions
from dagvault.operations.restore import ImportOptions
from dagvault.operations.retention import CleanupOptions, PruneOptions
from dagvault.operations.verify import VerifyOptions
from dagvault_api.models import BackupData, BackupRequest, ExportRequest, RestoreData

CliRunner = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture of conftest


@pytest.mark.parametrize(
    ("options", "flow"),
    [
        (BackupOptions, "flows.backup:backup_flow"),
        (RestoreOptions, "flows.restore:restore_flow"),
        (CleanupOptions, "flows.cleanup:cleanup_flow"),
        (PruneOptions, "flows.prune:prune_flow"),
        (VerifyOptions, "flows.verify:verify_flow"),
        (ExportOptions, "flows.export:export_flow"),
        (ImportOptions, "flows.export:import_sql_flow"),
        (ReplicateOptions, "flows.replicate:replicate_flow"),
        (ReportOptions, "flows.report:health_report_flow"),
    ],
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


def test_backup_json_and_the_api_answer_are_the_same_document(
    prefect_api_url: str, cli: CliRunner, tmp_path: Path
) -> None:
    make_odd_ledger(tmp_path / "node-ledger.db")
    config = str(write_odd_ledger_config(tmp_path))
    proc = cli(
        "backup", "--db", "node-ledger.db", "--config", config, "--description", "cli", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)

    env = {"DAGVAULT_CONFIG": config, "DATABASE_PATH": "./node-ledger.db"}
    with api_server(tmp_path, prefect_api_url, extra_env=env) as server, server.client() as http:
        response = http.post("/backup", json={"description": "api", "backup_type": "full"})
    assert response.status_code == 200, response.text
    answered = response.json()["data"]["result"]

    for document in (printed, answered):
        assert BackupResult.model_validate(document).document() == document
    assert set(printed) == set(answered)
    assert {k: type(v) for k, v in printed.items()} == {k: type(v) for k, v in answered.items()}
    assert set(printed["metadata"]) == set(answered["metadata"])
    assert (printed["metadata"]["description"], answered["metadata"]["description"]) == (
        "cli",
        "api",
    )
    assert printed["backup_type"] == answered["backup_type"] == "Full"
