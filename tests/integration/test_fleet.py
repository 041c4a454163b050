"""The fleet backup: many ledgers in parallel, isolated failures, on threads and on a real
Dask cluster (scheduler and worker processes on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import content_digest, free_port, wait_for_port

from dagvault.errors import ConfigError
from dagvault.fleet import fleet_members
from dagvault.restore import restore_backup
from dagvault.sample import create_sample_ledger
from flows.fleet import fleet_backup_flow

pytestmark = pytest.mark.usefixtures("prefect_api_url")


def make_fleet(root: Path, nodes: list[str]) -> list[Path]:
    paths = []
    for i, node in enumerate(nodes):
        path = root / "nodes" / node / "blockchain.db"
        path.parent.mkdir(parents=True)
        create_sample_ledger(path, 60 + i, seed=i, nodes=4)
        paths.append(path)
    return paths


def assert_restorable(backup: Path, ledger: Path, scratch: Path) -> None:
    restore_backup(backup, scratch, pre_restore_backup=False)
    assert content_digest(scratch) == content_digest(ledger)


def test_members_are_labelled_by_their_place_in_the_fleet(tmp_path: Path) -> None:
    ledgers = make_fleet(tmp_path, ["a", "b"])
    members = fleet_members(None, str(tmp_path / "nodes" / "*" / "*.db"), tmp_path / "bk")
    assert [(m.label, m.database_path, m.backup_dir) for m in members] == [
        ("a-blockchain", ledgers[0], tmp_path / "bk" / "a-blockchain"),
        ("b-blockchain", ledgers[1], tmp_path / "bk" / "b-blockchain"),
    ]
    with pytest.raises(ConfigError, match="matches no ledger"):
        fleet_members([], str(tmp_path / "none" / "*.db"), tmp_path / "bk")


@pytest.fixture
def dask_cluster(prefect_api_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A scheduler and one worker process (two threads) on loopback; the worker reports
    its task runs to the test's Prefect server and logs them at INFO to a file."""
    port, bin_dir = free_port(), Path(sys.executable).parent
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "PREFECT_LOGGING_LEVEL": "INFO"}
    worker_log = tmp_path / "dask-worker.log"
    scheduler = subprocess.Popen(
        [
            bin_dir / "dask",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            ":0",
            "--no-show",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes = [scheduler]
    try:
        wait_for_port(port, scheduler)
        address = f"tcp://127.0.0.1:{port}"
        with worker_log.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        bin_dir / "dask",
                        "worker",
                        address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "2",
                        "--host",
                        "127.0.0.1",
                        "--dashboard-address",
                        ":0",
                        "--no-nanny",
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=tmp_path,
                )
            )
        yield address, worker_log
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)


def test_fleet_runs_on_a_dask_cluster(tmp_path: Path, dask_cluster: tuple[str, Path]) -> None:
    address, worker_log = dask_cluster
    ledgers = make_fleet(tmp_path, ["n1", "n2", "n3"])
    result = fleet_backup_flow(
        glob=str(tmp_path / "nodes" / "*" / "blockchain.db"),
        backup_dir=str(tmp_path / "backups"),
        quality=False,
        task_runner="dask",
        dask_address=address,
    )
    assert result["failed"] == 0
    assert [r["status"] for r in result["reports"]] == ["ok"] * 3
    for ledger, report in zip(ledgers, result["reports"], strict=True):
        assert_restorable(Path(report["backup_path"]), ledger, tmp_path / f"{report['ledger']}.db")
    # The tasks (named "back-up <label>") ran in the worker process, not in this one.
    worker = worker_log.read_text()
    assert all(f"Task run 'back-up {r['ledger']}'" in worker for r in result["reports"])


def test_one_failing_node_does_not_stop_the_others(tmp_path: Path, cli: Any) -> None:
    """Through the CLI: a broken and a missing node fail, each with its reason; the
    others are backed up; the exit code is the first failure's."""
    good = make_fleet(tmp_path, ["a", "b"])
    broken = tmp_path / "nodes" / "c" / "blockchain.db"
    broken.parent.mkdir()
    broken.write_bytes(b"not a database" * 100)
    missing = tmp_path / "nodes" / "gone" / "blockchain.db"
    args = [str(missing), "--glob", str(tmp_path / "nodes" / "*" / "blockchain.db")]
    args += ["--backup-dir", str(tmp_path / "backups"), "--no-quality"]

    done = cli("fleet-backup", *args, "--json")

    assert done.returncode == 3, done.stderr
    assert "Error: 2 of 4 ledgers were not backed up" in done.stderr
    reports = {r["ledger"]: r for r in json.loads(done.stdout)["reports"]}
    assert reports["c-blockchain"]["error_type"] == "NotASQLiteDatabase"
    assert reports["gone-blockchain"]["error_type"] == "DatabaseNotFound"
    for ledger, label in zip(good, ["a-blockchain", "b-blockchain"], strict=True):
        assert reports[label]["status"] == "ok"
        backup = Path(reports[label]["backup_path"])
        assert backup.parent == tmp_path / "backups" / label
        assert_restorable(backup, ledger, tmp_path / f"{label}.restored.db")
