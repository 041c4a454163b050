"""Clients written from the system description can read what dagvault writes.

The description's Rust types (BackupInfo, BackupType, RestoreResult, BackupSchedule, the
response envelope and each operation's ``data``) as strict pydantic models: every field the
description has must be there with exactly its type (u64/i64 in range, String, bool,
Option, Vec<String>, HashMap<String, String>, the BackupType spellings). Other fields are
allowed: serde ignores unknown fields unless told otherwise. Checked against real ``.meta``
sidecars of the odd ledger (full, incremental, differential; plain and compressed), format 1
and 2 sidecars, ``list --json`` and the API's answers over real HTTP.

Integration half; the tests that need no server or child process are in
tests/unit/test_description_types.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
import pytest
from _api import Server, api_server
from _helpers import (
    add_odd_transactions,
    legacy_sidecar,
    make_odd_ledger,
    read_meta_json,
    write_odd_ledger_config,
)
from _shared.description_types import I64, U64, BackupInfo, Rust, _backups
from conftest import CliRunner
from pydantic import BaseModel

from dagvault.meta import meta_path, read_meta
from dagvault.verify import verify_backup

T = TypeVar("T")


class RestoreResult(Rust):
    success: bool
    backup_info: BackupInfo
    restore_timestamp: I64
    pre_restore_backup: str | None = None  # Option<String>: serde reads a missing one as None
    warnings: list[str]


class BackupSchedule(Rust):
    last_backup: I64
    next_backup: I64
    interval_hours: U64
    backup_dir: str
    is_due: bool


class Envelope(Rust, Generic[T]):
    success: bool
    data: T
    error: str | None = None
    timestamp: str


class BackupData(Rust):  # the description's POST /backup "data"
    success: bool
    message: str
    backup_path: str
    timestamp: str
    result: BackupInfo  # dagvault's: the backup taken


class RestoreData(Rust):
    success: bool
    message: str
    backup_path: str
    create_pre_restore_backup: bool
    timestamp: str
    result: RestoreResult


class ExportData(Rust):
    success: bool
    message: str
    export_path: str
    format: str
    timestamp: str


@pytest.mark.parametrize("version", [1, 2])
def test_older_sidecars_read_back_and_list_as_strings(
    odd_ledger: Path, tmp_path: Path, cli: CliRunner, version: int
) -> None:
    backups = tmp_path / "backups"
    taken = _backups(odd_ledger, backups, compress=False)
    written = {path: read_meta(path) for path in taken}
    for path in taken:
        old = legacy_sidecar(read_meta_json(path), version)
        assert isinstance(old["metadata"]["page_size"], int)  # what such a client choked on
        meta_path(path).write_text(json.dumps(old, indent=2))
        assert read_meta(path) == written[path]  # the same facts, in today's layout

    listed = _list_json(cli, backups, tmp_path)
    assert [entry["backup_path"] for entry in listed] == [str(p) for p in reversed(taken)]
    assert listed[0]["metadata"]["page_size"] == "8192"

    report = verify_backup(taken[-1])  # a delta: its whole chain has old sidecars
    assert report.ok, report.problems
    rewritten = read_meta_json(taken[-1])  # the verdict was recorded in format 3
    assert rewritten["format_version"] == 3 and rewritten["verification"]["status"] == "verified"
    BackupInfo.model_validate(rewritten)


def _list_json(cli: CliRunner, backups: Path, cwd: Path) -> list[dict[str, Any]]:
    proc = cli("list", "--backup-dir", str(backups), "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    for entry in listed:
        BackupInfo.model_validate(entry)
    return listed


def test_list_json_entries_are_the_description_backup_info(
    odd_ledger: Path, tmp_path: Path, cli: CliRunner
) -> None:
    backups = tmp_path / "backups"
    taken = _backups(odd_ledger, backups, compress=True)
    stray = backups / "node-ledger_1000000000.incr.zst"  # a data file whose .meta is gone
    shutil.copyfile(taken[1], stray)
    listed = {Path(e["backup_path"]).name: e for e in _list_json(cli, backups, tmp_path)}
    assert set(listed) == {p.name for p in [*taken, stray]}
    for path in taken:
        assert listed[path.name]["metadata"] == read_meta_json(path)["metadata"]
    fallback = listed[stray.name]
    assert fallback["has_metadata"] is False and fallback["metadata"] == {}
    assert (fallback["backup_type"], fallback["compression_enabled"]) == ("Incremental", True)


def test_the_cli_takes_backup_types_in_any_case(
    odd_ledger: Path, tmp_path: Path, cli: CliRunner
) -> None:
    config = str(write_odd_ledger_config(tmp_path))
    common = ("--db", str(odd_ledger), "--backup-dir", "backups", "--config", config)
    for spelling, expected in (("Full", "Full"), ("INCREMENTAL", "Incremental")):
        proc = cli("backup", *common, "--type", spelling, "--json")
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        assert info["backup_type"] == expected
        BackupInfo.model_validate(info)
        add_odd_transactions(odd_ledger, 3)
    wrong = cli("backup", *common, "--type", "weekly")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "weekly" in wrong.stderr


# ------------------------------------------------------------------------------ the HTTP API


@pytest.fixture(scope="module")
def server(prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("api-types")
    make_odd_ledger(workdir / "blockchain.db")
    config = write_odd_ledger_config(workdir)
    with api_server(workdir, prefect_api_url, extra_env={"DAGVAULT_CONFIG": str(config)}) as s:
        yield s


def _answer(response: httpx.Response, model: type[BaseModel]) -> Any:
    assert response.status_code == 200, response.text
    return model.model_validate(response.json()).data  # type: ignore[attr-defined]


def test_api_answers_are_the_description_types(server: Server) -> None:
    with server.client() as http:
        taken = []
        # The description's spelling, and any other case, of each backup type.
        for spelling, compress in (("Full", True), ("incremental", False), ("DIFFERENTIAL", True)):
            body = {"backup_type": spelling, "compress": compress, "description": "typed"}
            data = _answer(http.post("/backup", json=body), Envelope[BackupData])
            assert data.result.backup_type == spelling.capitalize()
            assert data.result.compression_enabled is compress
            taken.append(data.backup_path)
            add_odd_transactions(server.workdir / "blockchain.db", 3)
        wrong = http.post("/backup", json={"backup_type": "weekly"})
        assert wrong.status_code == 400 and "backup_type" in wrong.json()["error"]

        listed = _answer(http.get("/backup/list"), Envelope[list[BackupInfo]])
        assert [e.backup_path for e in listed] == list(reversed(taken))
        assert all(e.metadata["description"] == "typed" for e in listed)

        body = {"backup_path": taken[-1], "create_pre_restore_backup": True}
        restored = _answer(http.post("/backup/restore", json=body), Envelope[RestoreData])
        assert restored.result.backup_info.backup_path == taken[-1]
        assert restored.result.pre_restore_backup

        _answer(http.get("/backup/schedule"), Envelope[BackupSchedule])
        body = {"format": "sql", "tables": ["validators"], "quality": False}
        _answer(http.post("/backup/export", json=body), Envelope[ExportData])
